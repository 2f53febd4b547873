-- Health of an External Secrets Operator ClusterExternalSecret
-- (external-secrets.io/v1 and v1beta1).
--
-- The controller creates one ExternalSecret per selected namespace and lists
-- the namespaces it could not serve in status.failedNamespaces (namespace
-- and reason). Current releases report a single Ready condition (False with
-- "one or more namespaces failed"); early ones used the condition types
-- PartiallyReady and NotReady instead. This check does not look at the
-- health of the ExternalSecrets themselves: they are resources of their own.

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

local function failures()
  local failed = obj.status and obj.status.failedNamespaces
  if failed == nil or failed[1] == nil then
    return nil
  end
  local parts = {}
  for _, failure in ipairs(failed) do
    if type(failure) ~= "table" then
      -- v1alpha1 listed bare namespace names.
      table.insert(parts, tostring(failure))
    elseif failure.reason ~= nil and failure.reason ~= "" then
      table.insert(parts, tostring(failure.namespace) .. " (" .. failure.reason .. ")")
    else
      table.insert(parts, tostring(failure.namespace))
    end
  end
  return "Failed in " .. #parts .. " namespace(s): " .. table.concat(parts, ", ")
end

local failed = failures()
if failed ~= nil then
  return {status = "Degraded", message = failed}
end

local notReady = getCondition("NotReady") or getCondition("PartiallyReady")
if notReady ~= nil then
  return {status = "Degraded", message = explain(notReady, "ExternalSecrets could not be created")}
end

local ready = getCondition("Ready")
if ready == nil then
  return {status = "Progressing", message = "Waiting for the ExternalSecrets to be created"}
end
if ready.status == "True" then
  local provisioned = obj.status.provisionedNamespaces
  local count = 0
  if provisioned ~= nil then
    count = #provisioned
  end
  return {status = "Healthy", message = "ExternalSecret created in " .. count .. " namespace(s)"}
elseif ready.status == "False" then
  return {status = "Degraded", message = explain(ready, "ExternalSecrets could not be created")}
end
return {status = "Progressing", message = explain(ready, "Waiting for the ExternalSecrets to be created")}
