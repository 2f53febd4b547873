-- Health of a Crossplane CompositeResourceDefinition
-- (apiextensions.crossplane.io v1 and v2).
--
-- Established: True (WatchingCompositeResource) once the composite
-- resource's CRD exists and its controller runs; False while it is torn
-- down (TerminatingCompositeResource). Offered, for XRDs that declare
-- claimNames (v1 only): the same for the claim (WatchingCompositeResourceClaim,
-- TerminatingCompositeResourceClaim). Errors (an XRD whose CRD cannot be
-- rendered or applied) are reported as events only, not as a condition, so
-- such an XRD stays Progressing. The crossplane.io/paused annotation stops
-- reconciliation.

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

-- Crossplane does not re-stamp a condition that did not change, so one
-- condition may carry an older observedGeneration than another: the newest
-- one tells whether the current spec was seen.
local function latestObservedGeneration()
  local latest = nil
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, condition in ipairs(obj.status.conditions) do
    local observed = condition.observedGeneration
    if observed ~= nil and (latest == nil or observed > latest) then
      latest = observed
    end
  end
  return latest
end

local annotations = obj.metadata and obj.metadata.annotations
if annotations ~= nil and annotations["crossplane.io/paused"] == "true" then
  return {status = "Suspended", message = "Reconciliation is paused"}
end

local established = getCondition("Established")
local offered = getCondition("Offered")
if established == nil and offered == nil then
  return {status = "Progressing", message = "Waiting for the composite resource to be established"}
end

local generation = obj.metadata and obj.metadata.generation
local observed = latestObservedGeneration()
if generation ~= nil and observed ~= nil and observed < generation then
  return {
    status = "Progressing",
    message = "Waiting for Crossplane to observe generation " .. tostring(generation),
  }
end

if established == nil or established.status ~= "True" then
  if established ~= nil and established.status == "False"
      and established.reason ~= "TerminatingCompositeResource" then
    return {status = "Degraded", message = explain(established, "Composite resource is not established")}
  end
  return {status = "Progressing", message = explain(established, "Waiting for the composite resource to be established")}
end

local wantsClaim = obj.spec ~= nil and obj.spec.claimNames ~= nil
if wantsClaim or offered ~= nil then
  if offered == nil or offered.status ~= "True" then
    if offered ~= nil and offered.status == "False"
        and offered.reason ~= "TerminatingCompositeResourceClaim" then
      return {status = "Degraded", message = explain(offered, "Claim is not offered")}
    end
    return {status = "Progressing", message = explain(offered, "Waiting for the claim to be offered")}
  end
end

return {status = "Healthy", message = "Composite resource is established"}
