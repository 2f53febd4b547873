-- Health of an Argo Rollouts Rollout (argoproj.io/v1alpha1).
--
-- Since Argo Rollouts 1.0 the controller computes status.phase (Healthy,
-- Progressing, Paused, Degraded) and status.message itself; clients may only
-- trust them once status.observedGeneration (a string) equals
-- metadata.generation. Failures are also visible as conditions: InvalidSpec,
-- and the Progressing condition's reason RolloutAborted or
-- ProgressDeadlineExceeded. Pauses are spec.paused (manual) or
-- status.pauseConditions (a canary pause step, a blue-green pause, an
-- inconclusive analysis). Controllers older than 1.0 leave phase empty: then
-- the replica counts decide.

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

local spec = obj.spec or {}
local status = obj.status
if status == nil or next(status) == nil then
  return {status = "Progressing", message = "Waiting for the rollout controller to observe the rollout"}
end

-- observedGeneration is a decimal string from 0.10 on, a hash before that.
local generation = obj.metadata and obj.metadata.generation
local observed = tonumber(status.observedGeneration)
if generation ~= nil and observed ~= nil and observed < generation then
  return {
    status = "Progressing",
    message = "Waiting for the rollout controller to observe generation " .. tostring(generation),
  }
end

local invalid = getCondition("InvalidSpec")
if invalid ~= nil and invalid.status == "True" then
  return {status = "Degraded", message = "InvalidSpec: " .. (invalid.message or "")}
end

local progressing = getCondition("Progressing")
if status.abort == true or (progressing ~= nil and progressing.reason == "RolloutAborted") then
  -- The condition reads "Rollout aborted update to revision N[: why]".
  if progressing ~= nil and progressing.reason == "RolloutAborted"
      and progressing.message ~= nil and progressing.message ~= "" then
    return {status = "Degraded", message = progressing.message}
  end
  return {status = "Degraded", message = "Rollout aborted"}
end
if progressing ~= nil and progressing.reason == "ProgressDeadlineExceeded" then
  return {status = "Degraded", message = "ProgressDeadlineExceeded: " .. (progressing.message or "")}
end

if spec.paused == true then
  return {status = "Suspended", message = "Rollout is paused manually"}
end
if status.pauseConditions ~= nil and status.pauseConditions[1] ~= nil then
  local reasons = {}
  for _, pause in ipairs(status.pauseConditions) do
    table.insert(reasons, pause.reason or "unknown")
  end
  return {status = "Suspended", message = "Rollout is paused: " .. table.concat(reasons, ", ")}
end
if status.controllerPause == true then
  -- Pause conditions were cleared (promoted) but the controller has not acted yet.
  return {status = "Progressing", message = "Waiting for the rollout to resume"}
end

local phase = status.phase
local message = status.message or ""
if phase == "Healthy" then
  return {status = "Healthy", message = message}
elseif phase == "Degraded" then
  return {status = "Degraded", message = message}
elseif phase == "Paused" then
  return {status = "Suspended", message = message}
elseif phase == "Progressing" then
  return {status = "Progressing", message = message}
end

-- No phase: a controller older than 1.0. Decide from the replica counts.
local desired = spec.replicas
if desired == nil then
  desired = 1
end
local updated = status.updatedReplicas or 0
local available = status.availableReplicas or 0
if updated < desired then
  return {
    status = "Progressing",
    message = "Waiting for rollout to finish: " .. updated .. " of " .. desired .. " replicas updated",
  }
end
if available < updated then
  return {
    status = "Progressing",
    message = "Waiting for rollout to finish: " .. available .. " of " .. updated .. " updated replicas available",
  }
end
local strategy = spec.strategy or {}
if strategy.blueGreen ~= nil then
  local activeSelector = status.blueGreen and status.blueGreen.activeSelector
  if activeSelector == nil or activeSelector ~= status.currentPodHash then
    return {status = "Progressing", message = "Waiting for the active service to switch to the new ReplicaSet"}
  end
end
if strategy.canary ~= nil then
  if status.stableRS == nil or status.stableRS ~= status.currentPodHash then
    return {status = "Progressing", message = "Waiting for all canary steps to complete"}
  end
end
return {status = "Healthy", message = ""}
