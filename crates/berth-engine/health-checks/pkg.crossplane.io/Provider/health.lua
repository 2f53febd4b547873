-- Health of a Crossplane package: Provider, Configuration or Function
-- (pkg.crossplane.io); the other two kinds name this file in `same-as`.
--
-- The package manager reports two conditions. Installed: True (reason
-- ActivePackageRevision) once the current revision is active; False while
-- unpacking (UnpackingPackage), when the revision is inactive
-- (InactivePackageRevision, which with revisionActivationPolicy Manual waits
-- for a person), or with an error. Healthy: True (HealthyPackageRevision),
-- False (UnhealthyPackageRevision), Unknown (UnknownPackageRevisionHealth,
-- still installing). The crossplane.io/paused annotation stops
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

local installed = getCondition("Installed")
local healthy = getCondition("Healthy")
if installed == nil and healthy == nil then
  return {status = "Progressing", message = "Waiting for the package to be installed"}
end

local generation = obj.metadata and obj.metadata.generation
local observed = latestObservedGeneration()
if generation ~= nil and observed ~= nil and observed < generation then
  return {
    status = "Progressing",
    message = "Waiting for the package manager to observe generation " .. tostring(generation),
  }
end

if installed ~= nil and installed.status == "False" then
  if installed.reason == "InactivePackageRevision" then
    if obj.spec ~= nil and obj.spec.revisionActivationPolicy == "Manual" then
      return {status = "Suspended", message = "Waiting for the package revision to be activated manually"}
    end
    return {status = "Progressing", message = explain(installed, "Activating the package revision")}
  end
  if installed.reason == "UnpackingPackage" and (installed.message == nil or installed.message == "") then
    -- An unpack that fails carries the error as its message.
    return {status = "Progressing", message = "Unpacking the package"}
  end
  return {status = "Degraded", message = explain(installed, "Package installation failed")}
end

if healthy ~= nil and healthy.status == "False" then
  return {status = "Degraded", message = explain(healthy, "Package revision is unhealthy")}
end

if installed ~= nil and installed.status == "True" and healthy ~= nil and healthy.status == "True" then
  return {status = "Healthy", message = explain({message = healthy.message}, "Package is installed and healthy")}
end

if installed == nil or installed.status ~= "True" then
  return {status = "Progressing", message = explain(installed, "Waiting for the package to be installed")}
end
if healthy ~= nil and healthy.message ~= nil and healthy.message ~= "" then
  return {status = "Progressing", message = explain(healthy, "")}
end
return {status = "Progressing", message = "Waiting for the package revision to become healthy"}
