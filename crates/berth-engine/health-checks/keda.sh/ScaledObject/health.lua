-- Health of a KEDA ScaledObject (keda.sh/v1alpha1).
--
-- KEDA initializes four conditions to Unknown and then sets them. Ready:
-- True (ScaledObjectReady) once the spec checked out and the HPA exists,
-- False with the check's failure (e.g. ScaledObjectCheckFailed). Active:
-- whether a trigger currently asks for scaling; False (scaled to the minimum
-- or zero) is normal, not a fault. Fallback: True when a trigger's source
-- keeps failing and KEDA holds the fallback replica count instead. Paused:
-- True when the autoscaling.keda.sh/paused-replicas or
-- autoscaling.keda.sh/paused annotation froze scaling.

local function getCondition(conditionType)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == conditionType then
      return condition
    end
  end
  return nil
end

local function explain(condition, fallback)
  local reason = condition and condition.reason or ""
  local message = condition and condition.message or ""
  if reason ~= "" and message ~= "" then
    return reason .. ": " .. message
  elseif message ~= "" then
    return message
  elseif reason ~= "" then
    return reason
  end
  return fallback
end

local ready = getCondition("Ready")
if ready ~= nil and ready.status == "False" then
  return {status = "Degraded", message = explain(ready, "ScaledObject is not ready")}
end

local paused = getCondition("Paused")
local annotations = obj.metadata and obj.metadata.annotations or {}
if (paused ~= nil and paused.status == "True")
    or annotations["autoscaling.keda.sh/paused-replicas"] ~= nil
    or annotations["autoscaling.keda.sh/paused"] == "true" then
  local message = paused and paused.status == "True" and paused.message or ""
  if message == "" then
    message = "ScaledObject is paused"
  end
  return {status = "Suspended", message = message}
end

local fallback = getCondition("Fallback")
if fallback ~= nil and fallback.status == "True" then
  return {status = "Degraded", message = explain(fallback, "A trigger is falling back")}
end

if ready == nil then
  return {status = "Progressing", message = "Waiting for KEDA to set up scaling"}
end
if ready.status == "True" then
  return {status = "Healthy", message = explain({message = ready.message}, "ScaledObject is ready")}
end
return {status = "Progressing", message = explain(ready, "Waiting for KEDA to set up scaling")}
