-- Health of a cert-manager CertificateRequest (cert-manager.io/v1).
--
-- A one-shot request. Conditions: Approved / Denied (set once by an
-- approver, never False), InvalidRequest (the signer refused the input),
-- Ready (reason Pending while in flight, Issued when status.certificate is
-- set, Failed or Denied when it will never be issued).

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

local denied = getCondition("Denied")
if denied ~= nil and denied.status == "True" then
  return {status = "Degraded", message = "Denied: " .. explain({message = denied.message}, denied.reason or "request denied")}
end

local invalid = getCondition("InvalidRequest")
if invalid ~= nil and invalid.status == "True" then
  return {status = "Degraded", message = "Invalid request: " .. explain(invalid, "rejected by the signer")}
end

local ready = getCondition("Ready")
if ready ~= nil and ready.status == "True" then
  return {status = "Healthy", message = explain({message = ready.message}, "Certificate issued")}
end
if ready ~= nil and (ready.reason == "Failed" or ready.reason == "Denied") then
  return {status = "Degraded", message = explain(ready, "Request failed")}
end

local approved = getCondition("Approved")
if approved == nil or approved.status ~= "True" then
  return {status = "Progressing", message = "Waiting for the request to be approved"}
end

return {status = "Progressing", message = explain(ready, "Waiting for the issuer to sign the request")}
