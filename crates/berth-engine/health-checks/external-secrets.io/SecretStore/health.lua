-- Health of an External Secrets Operator SecretStore or ClusterSecretStore
-- (external-secrets.io/v1 and v1beta1); ClusterSecretStore names this file in `same-as`.
--
-- The controller validates the provider configuration and reports a Ready
-- condition: True with reason Valid (or ValidationUnknown, for providers
-- that cannot be checked without fetching a secret), False with reason
-- InvalidStoreConfiguration, InvalidProviderConfig or ValidationFailed.

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
  return {status = "Progressing", message = "Waiting for the store to be validated"}
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation then
  return {
    status = "Progressing",
    message = "Waiting for the store to be validated for generation " .. tostring(generation),
  }
end

if ready.status == "True" then
  return {status = "Healthy", message = explain({message = ready.message}, "Store validated")}
elseif ready.status == "False" then
  return {status = "Degraded", message = explain(ready, "Store validation failed")}
end
return {status = "Progressing", message = explain(ready, "Waiting for the store to be validated")}
