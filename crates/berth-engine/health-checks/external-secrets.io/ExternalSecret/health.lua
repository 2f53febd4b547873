-- Health of an External Secrets Operator ExternalSecret
-- (external-secrets.io/v1 and v1beta1).
--
-- The Ready condition is True once the target Secret was written (reason
-- SecretSynced, or SecretDeleted when deletionPolicy Delete removed it
-- because the provider has no data), False with the error otherwise (reason
-- SecretSyncedError, and in newer releases more specific ones). On success
-- the controller records status.syncedResourceVersion as
-- "<metadata.generation>-<hash of labels and annotations>", which tells
-- which generation the last sync was for.

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
  return {status = "Progressing", message = "Waiting for the secret to be synced"}
end

if ready.status == "False" then
  return {status = "Degraded", message = explain(ready, "Secret sync failed")}
end

if ready.status == "True" then
  local generation = obj.metadata and obj.metadata.generation
  local synced = obj.status.syncedResourceVersion
  if generation ~= nil and type(synced) == "string" then
    local syncedGeneration = tonumber(string.match(synced, "^(%d+)%-"))
    if syncedGeneration ~= nil and syncedGeneration < generation then
      return {
        status = "Progressing",
        message = "Waiting for generation " .. tostring(generation) .. " to be synced",
      }
    end
  end
  return {status = "Healthy", message = explain({message = ready.message}, "Secret synced")}
end

return {status = "Progressing", message = explain(ready, "Waiting for the secret to be synced")}
