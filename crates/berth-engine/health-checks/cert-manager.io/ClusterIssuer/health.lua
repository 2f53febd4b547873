-- Health of a cert-manager Issuer or ClusterIssuer (cert-manager.io/v1).
--
-- The only documented condition is Ready: True once the issuer is set up
-- (for ACME, the account is registered), False with the setup error.

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
if ready == nil then
  return {status = "Progressing", message = "Waiting for the issuer to be initialized"}
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation then
  return {
    status = "Progressing",
    message = "Waiting for cert-manager to observe generation " .. tostring(generation),
  }
end

if ready.status == "True" then
  return {status = "Healthy", message = explain({message = ready.message}, "Issuer is ready")}
elseif ready.status == "False" then
  return {status = "Degraded", message = explain(ready, "Issuer is not ready")}
end
return {status = "Progressing", message = explain(ready, "Waiting for the issuer to be initialized")}
