-- Health of a KEDA ScaledJob (keda.sh/v1alpha1).
--
-- Ready: True once the spec checked out, False with the check's failure
-- (e.g. ScaledJobCheckFailed). Active: whether triggers currently ask for
-- Jobs; False is the normal idle state. Paused: True when the
-- autoscaling.keda.sh/paused annotation stopped Job creation. The Jobs
-- themselves have their own health.

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
  return {status = "Degraded", message = explain(ready, "ScaledJob is not ready")}
end

local paused = getCondition("Paused")
local annotations = obj.metadata and obj.metadata.annotations or {}
if (paused ~= nil and paused.status == "True") or annotations["autoscaling.keda.sh/paused"] == "true" then
  local message = paused and paused.status == "True" and paused.message or ""
  if message == "" then
    message = "ScaledJob is paused"
  end
  return {status = "Suspended", message = message}
end

if ready == nil then
  return {status = "Progressing", message = "Waiting for KEDA to set up scaling"}
end
if ready.status == "True" then
  return {status = "Healthy", message = explain({message = ready.message}, "ScaledJob is ready")}
end
return {status = "Progressing", message = explain(ready, "Waiting for KEDA to set up scaling")}
