-- Health of a Crossplane managed resource, composite resource (XR) or
-- claim. Not tied to one group/kind: the engine applies it by rule (see
-- NOTES.md), e.g. to s3.aws.upbound.io/Bucket or kubernetes.crossplane.io/Object.
--
-- Crossplane resources report two conditions. Synced: True (ReconcileSuccess)
-- when the last reconcile worked, False with ReconcileError, or False with
-- ReconcilePaused when the crossplane.io/paused annotation stops it. Ready:
-- True (Available), False while Creating, Deleting or Unavailable (for XRs
-- and claims, Creating lists the unready composed resources). Providers built
-- with upjet add LastAsyncOperation (False with ApplyFailure and the like when
-- the asynchronous create/update failed) and AsyncOperation. A reference to
-- another resource that has no value yet makes Synced False with "referenced
-- field was empty (referenced resource may not yet be ready)": that is
-- waiting, not failure.
--
-- Returns nothing for an object that is not a managed resource (no
-- spec.forProvider) and has no Ready condition, unless it reports a failure
-- or a pause: a ProviderConfig, a ProviderConfigUsage, a ProviderRevision,
-- ... have no health of this kind to report.

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
local synced = getCondition("Synced")
local ready = getCondition("Ready")

if (annotations ~= nil and annotations["crossplane.io/paused"] == "true")
    or (synced ~= nil and synced.reason == "ReconcilePaused") then
  return {status = "Suspended", message = "Reconciliation is paused"}
end

-- Managed resources always have spec.forProvider; XRs and claims have a
-- Ready condition once Crossplane has seen them.
local managed = obj.spec ~= nil and obj.spec.forProvider ~= nil

if synced == nil and ready == nil then
  if managed then
    return {status = "Progressing", message = "Waiting for the provider to reconcile the resource"}
  end
  return nil
end

local generation = obj.metadata and obj.metadata.generation
local observed = latestObservedGeneration()
if generation ~= nil and observed ~= nil and observed < generation then
  return {
    status = "Progressing",
    message = "Waiting for the controller to observe generation " .. tostring(generation),
  }
end

if synced ~= nil and synced.status == "False" then
  local message = synced.message or ""
  if string.find(message, "referenced resource may not yet be ready", 1, true) ~= nil then
    return {status = "Progressing", message = "Waiting for referenced resources: " .. message}
  end
  return {status = "Degraded", message = explain(synced, "Reconcile error")}
end

local lastAsync = getCondition("LastAsyncOperation")
if lastAsync ~= nil and lastAsync.status == "False" then
  return {status = "Degraded", message = explain(lastAsync, "Asynchronous operation failed")}
end

if ready ~= nil and ready.status == "True" then
  return {status = "Healthy", message = explain({message = ready.message}, "Resource is available")}
end

if ready ~= nil then
  return {status = "Progressing", message = explain(ready, "Waiting for the resource to become ready")}
end
if managed then
  return {status = "Progressing", message = "Waiting for the resource to become ready"}
end
-- Synced without Ready on something that is not a managed resource (another
-- Crossplane kind reached by the group rule): only its failures count.
return nil
