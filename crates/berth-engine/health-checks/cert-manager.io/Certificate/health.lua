-- Health of a cert-manager Certificate (cert-manager.io/v1).
--
-- cert-manager reports two conditions: Ready (the Secret holds a valid,
-- unexpired certificate matching the spec) and Issuing (present while an
-- issuance is under way; set to False with the CertificateRequest's reason
-- when that issuance failed, after which cert-manager retries with backoff).

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
local issuing = getCondition("Issuing")

if ready == nil and issuing == nil then
  return {status = "Progressing", message = "Waiting for the certificate to be issued"}
end

local generation = obj.metadata and obj.metadata.generation
if ready ~= nil and generation ~= nil and ready.observedGeneration ~= nil
    and ready.observedGeneration < generation then
  return {
    status = "Progressing",
    message = "Waiting for cert-manager to observe generation " .. tostring(generation),
  }
end

if ready ~= nil and ready.status == "True" then
  if issuing ~= nil and issuing.status == "False" then
    -- The current certificate is still valid; only its renewal failed.
    return {
      status = "Healthy",
      message = "Certificate is valid, but renewal failed: " .. explain({message = issuing.message}, issuing.reason or "unknown error"),
    }
  end
  return {status = "Healthy", message = explain({message = ready.message}, "Certificate is up to date")}
end

if issuing ~= nil and issuing.status == "True" then
  return {status = "Progressing", message = explain({message = issuing.message}, "Issuing certificate")}
end

if issuing ~= nil and issuing.status == "False" then
  return {status = "Degraded", message = explain(issuing, "Issuance failed")}
end

if ready ~= nil and ready.reason == "Expired" then
  return {status = "Degraded", message = explain(ready, "Certificate has expired")}
end

if obj.status.lastFailureTime ~= nil then
  return {status = "Degraded", message = "Last issuance failed at " .. obj.status.lastFailureTime}
end

return {status = "Progressing", message = explain(ready, "Waiting for the certificate to become ready")}
