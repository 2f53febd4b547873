-- Health of a Bitnami SealedSecret (bitnami.com/v1alpha1).
--
-- The sealed-secrets controller reports one condition, Synced: True once it
-- decrypted the data and wrote the Secret, False with the error (typically
-- "no key could decrypt secret", or a Secret of that name it does not own).
-- status.observedGeneration tells which spec the condition is about.
--
-- No status at all is reported as Progressing: the controller writes status
-- by default (--update-status, on since 0.17), so a missing status is a
-- SealedSecret it has not processed yet. A controller run with
-- --update-status=false never writes one; its SealedSecrets stay Progressing.

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

local synced = getCondition("Synced")
if synced == nil then
  return {status = "Progressing", message = "Waiting for the controller to unseal the secret"}
end

local generation = obj.metadata and obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= nil and observed < generation then
  return {
    status = "Progressing",
    message = "Waiting for the controller to observe generation " .. tostring(generation),
  }
end

local message = synced.message
if message == "" then
  message = nil
end
if synced.status == "True" then
  return {status = "Healthy", message = message or "Secret unsealed"}
elseif synced.status == "False" then
  return {status = "Degraded", message = message or "Failed to unseal the secret"}
end
return {status = "Progressing", message = message or "Waiting for the controller to unseal the secret"}
