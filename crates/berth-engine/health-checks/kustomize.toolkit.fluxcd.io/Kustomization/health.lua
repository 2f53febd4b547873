-- Health of a Flux object reconciled the kstatus way: Kustomization
-- (kustomize.toolkit.fluxcd.io) and HelmRelease (helm.toolkit.fluxcd.io).
-- HelmRelease names this file in `same-as`.
--
-- Flux documents three conditions. Ready: True after a successful
-- reconciliation, False with the failure's reason (the controller retries
-- with backoff), Unknown while a reconciliation runs. Reconciling: True
-- (reason Progressing, or ProgressingWithRetry after a failure) while the
-- controller works. Stalled: True when it gave up until the spec changes
-- (e.g. HelmRelease RetriesExceeded). spec.suspend stops reconciliation.
-- Conditions carry the generation they were computed for;
-- status.observedGeneration only moves on success or stall.

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

if obj.spec ~= nil and obj.spec.suspend == true then
  return {status = "Suspended", message = "Reconciliation is suspended"}
end

local ready = getCondition("Ready")
local reconciling = getCondition("Reconciling")
local stalled = getCondition("Stalled")
if ready == nil and reconciling == nil and stalled == nil then
  return {status = "Progressing", message = "Waiting for the controller to reconcile"}
end

local generation = obj.metadata and obj.metadata.generation

local function current(condition)
  if generation == nil or condition == nil then
    return true
  end
  local observed = condition.observedGeneration
  if observed == nil and obj.status ~= nil then
    observed = obj.status.observedGeneration
  end
  return observed == nil or observed >= generation
end

if stalled ~= nil and stalled.status == "True" and current(stalled) then
  return {status = "Degraded", message = explain(stalled, "Reconciliation stalled")}
end

if not current(ready) then
  if reconciling ~= nil and reconciling.status == "True" then
    return {status = "Progressing", message = explain(reconciling, "Reconciliation in progress")}
  end
  return {
    status = "Progressing",
    message = "Waiting for the controller to reconcile generation " .. tostring(generation),
  }
end

if ready ~= nil and ready.status == "True" then
  return {status = "Healthy", message = explain({message = ready.message}, "Reconciliation succeeded")}
end

if ready ~= nil and ready.status == "False" then
  if ready.reason == "DependencyNotReady" then
    return {status = "Progressing", message = explain(ready, "Waiting for dependencies")}
  end
  -- The last attempt failed; a retry (Reconciling=ProgressingWithRetry) does
  -- not make it less failed.
  return {status = "Degraded", message = explain(ready, "Reconciliation failed")}
end

if reconciling ~= nil and reconciling.status == "True" then
  return {status = "Progressing", message = explain(reconciling, "Reconciliation in progress")}
end
return {status = "Progressing", message = explain(ready, "Waiting for the controller to reconcile")}
