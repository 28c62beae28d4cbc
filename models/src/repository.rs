//! The model repository in Triton's layout: `<repo>/<model>/config.yaml` and
//! `<repo>/<model>/<version>/model.onnx`. Every model is loaded once per version and kept warm,
//! shared by all callers, until a function scaled to zero lets it go (`unload_idle`; the next
//! `get` loads it again). A model that cannot load is reported with its reason and the others
//! still serve; a failed reload keeps the versions that were serving.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use serde::Serialize;
use weir_gpu::Inventory;

use crate::backend::{Backends, ModelError};
use crate::budget::Budget;
use crate::config::{ModelConfig, VersionPolicy};
use crate::labels;
pub use crate::loaded::LoadedModel;
use crate::loaded::now_ms;
use crate::memory::Footprint;
use crate::metric_names as m;

/// Why a model was unloaded by the budget, as the index reports it.
const EVICTED: &str =
    "unloaded to stay within the model memory budget; the next request loads it again";
/// Why a model was unloaded after idling (a function scaled to zero), as the index reports it.
const IDLED: &str = "unloaded after idling; the next request loads it again";

#[derive(Clone)]
enum State {
    Ready(Arc<LoadedModel>),
    Unavailable(String),
}

#[derive(Default)]
struct Entry {
    versions: BTreeMap<u64, State>,
    /// Why the model as a whole has nothing serving (bad config, no versions, unloaded).
    reason: Option<String>,
}

/// A row of `POST /v2/repository/index`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IndexEntry {
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    pub state: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum RepoError {
    #[error("unknown model '{0}'")]
    NotFound(String),
    #[error("model '{name}' is not ready: {reason}")]
    NotReady { name: String, reason: String },
    #[error("model '{name}' has no version {version}")]
    NoVersion { name: String, version: String },
    #[error("model '{name}': {reason}")]
    Load { name: String, reason: String },
    #[error("the model repository {0}")]
    Root(String),
}

pub struct Repository {
    root: PathBuf,
    backends: Backends,
    inventory: Inventory,
    /// Model memory allowed per device before idle models are unloaded.
    budget: Budget,
    /// The largest footprint measured per model version, kept across unloads (a reload can land
    /// in memory the allocator kept and seem to take nothing).
    footprints: Mutex<HashMap<(String, u64), Footprint>>,
    models: RwLock<BTreeMap<String, Entry>>,
    /// Models some function keeps warm (`workers.min` above zero): never unloaded for idling.
    kept_warm: Mutex<std::collections::HashSet<String>>,
    /// Held while an unloaded model is loaded again on demand: one load for a burst.
    reloads: Mutex<()>,
}

impl Repository {
    /// Open `root` and load every model in it. Models that fail are kept, unavailable, with their
    /// reason; only an unreadable root is an error.
    pub fn open(
        root: &Path,
        backends: Backends,
        inventory: Inventory,
    ) -> Result<Repository, RepoError> {
        Self::open_with_budget(root, backends, inventory, Budget::default())
    }

    /// As `open`, unloading the least recently used idle models on a device past its budget.
    pub fn open_with_budget(
        root: &Path,
        backends: Backends,
        inventory: Inventory,
        budget: Budget,
    ) -> Result<Repository, RepoError> {
        let repo = Repository {
            root: root.to_path_buf(),
            backends,
            inventory,
            budget,
            footprints: Mutex::new(HashMap::new()),
            models: RwLock::new(BTreeMap::new()),
            kept_warm: Mutex::default(),
            reloads: Mutex::default(),
        };
        for name in repo.names()? {
            if let Err(e) = repo.load(&name) {
                tracing::warn!(model = %name, error = %e, "model not loaded");
            }
        }
        Ok(repo)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Folder names under the root (hidden ones skipped), sorted.
    fn names(&self) -> Result<Vec<String>, RepoError> {
        let dir = std::fs::read_dir(&self.root)
            .map_err(|e| RepoError::Root(format!("{}: {e}", self.root.display())))?;
        let mut names: Vec<String> = dir
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        Ok(names)
    }

    /// (Re)load a model from disk. On failure the versions that were serving stay serving.
    pub fn load(&self, name: &str) -> Result<(), RepoError> {
        let dir = self.root.join(name);
        if name.contains(['/', '\\']) || name.starts_with('.') || !dir.is_dir() {
            return Err(RepoError::NotFound(name.to_string()));
        }
        let fail = |reason: String| {
            let mut models = self.models.write().unwrap_or_else(|p| p.into_inner());
            let entry = models.entry(name.to_string()).or_default();
            let serving = entry
                .versions
                .values()
                .any(|s| matches!(s, State::Ready(_)));
            if !serving {
                entry.versions.clear();
                entry.reason = Some(reason.clone());
            }
            RepoError::Load {
                name: name.to_string(),
                reason,
            }
        };
        let config = match read_config(&dir) {
            Ok(c) => Arc::new(c),
            Err(reason) => return Err(fail(reason)),
        };
        let versions = match pick_versions(&dir, &config.version_policy) {
            Ok(v) => v,
            Err(reason) => return Err(fail(reason)),
        };
        let labels = match &config.labels {
            Some(file) => match labels::read(&dir.join(file)) {
                Ok(l) => Some(Arc::new(l)),
                Err(reason) => return Err(fail(format!("labels: {reason}"))),
            },
            None => None,
        };
        let mut loaded = BTreeMap::new();
        for v in versions {
            let started = Instant::now();
            let state = match self.load_version(name, v, &dir, &config, labels.clone()) {
                Ok(m) => {
                    metrics::histogram!(m::MODEL_LOAD, "model" => name.to_string(), "backend" => m.backend)
                        .record(started.elapsed().as_secs_f64());
                    tracing::info!(model = name, version = v, backend = m.backend, device = %m.device,
                        ms = started.elapsed().as_millis() as u64, memory_mib = m.bytes >> 20, "model ready");
                    State::Ready(Arc::new(m))
                }
                Err(e) => {
                    tracing::warn!(model = name, version = v, error = %e, "model version not loaded");
                    State::Unavailable(e.to_string())
                }
            };
            loaded.insert(v, state);
        }
        if !loaded.values().any(|s| matches!(s, State::Ready(_))) {
            let reasons: Vec<String> = loaded
                .iter()
                .map(|(v, s)| match s {
                    State::Unavailable(r) => format!("version {v}: {r}"),
                    State::Ready(_) => String::new(),
                })
                .collect();
            return Err(fail(reasons.join("; ")));
        }
        let mut models = self.models.write().unwrap_or_else(|p| p.into_inner());
        models.insert(
            name.to_string(),
            Entry {
                versions: loaded,
                reason: None,
            },
        );
        self.enforce_budget(&mut models, name);
        Ok(())
    }

    /// Unload the least recently used idle models until each device's fit its budget.
    fn enforce_budget(&self, models: &mut BTreeMap<String, Entry>, keep: &str) {
        let resident: Vec<crate::budget::Resident> = models
            .iter()
            .flat_map(|(name, e)| e.versions.values().map(move |s| (name, s)))
            .filter_map(|(name, s)| match s {
                State::Ready(m) => Some(crate::budget::Resident {
                    name: name.clone(),
                    device: m.device,
                    bytes: m.bytes,
                    last_used: m.last_used.load(Ordering::Relaxed),
                    // The map holds one reference; any other is a request using it.
                    busy: Arc::strong_count(m) > 1,
                }),
                State::Unavailable(_) => None,
            })
            .collect();
        let evicted = crate::budget::evictions(&resident, &self.budget, keep);
        for name in &evicted {
            if let Some(e) = models.get_mut(name) {
                e.versions.clear();
                e.reason = Some(EVICTED.into());
                metrics::counter!(m::MODEL_UNLOADS, "model" => name.clone(), "reason" => "budget")
                    .increment(1);
                tracing::info!(model = %name, "unloaded to stay within the model memory budget");
            }
        }
        self.record_memory(models);
    }

    /// Set the memory gauge again (`weir_model_memory_bytes`): once a metrics recorder is
    /// installed, for the models loaded before it was.
    pub fn publish_memory(&self) {
        let models = self.models.read().unwrap_or_else(|p| p.into_inner());
        self.record_memory(&models);
    }

    /// The memory gauge per device: what the loaded models take there (0 on a device with none).
    fn record_memory(&self, models: &BTreeMap<String, Entry>) {
        let mut per_device: BTreeMap<String, u64> = std::iter::once(weir_gpu::Device::Cpu)
            .chain(
                self.inventory
                    .gpus
                    .iter()
                    .map(|g| weir_gpu::Device::Cuda(g.index)),
            )
            .map(|d| (d.to_string(), 0))
            .collect();
        for s in models.values().flat_map(|e| e.versions.values()) {
            if let State::Ready(m) = s {
                *per_device.entry(m.device.to_string()).or_default() += m.bytes;
            }
        }
        for (device, total) in per_device {
            metrics::gauge!(m::MODEL_MEMORY, "device" => device).set(total as f64);
        }
    }

    /// This load's footprint, or the larger one measured for the same file before.
    fn footprint(&self, name: &str, version: u64, file: u64, measured: Option<u64>) -> Footprint {
        let mut known = self.footprints.lock().unwrap_or_else(|p| p.into_inner());
        let key = (name.to_string(), version);
        let f = Footprint { file, measured }.or_larger(known.get(&key).copied());
        known.insert(key, f);
        f
    }

    fn load_version(
        &self,
        name: &str,
        version: u64,
        dir: &Path,
        config: &Arc<ModelConfig>,
        labels: Option<Arc<Vec<String>>>,
    ) -> Result<LoadedModel, ModelError> {
        let file = dir.join(version.to_string()).join("model.onnx");
        let backend = self.backends.choose(config.backend)?;
        let device = config
            .instance_group
            .device
            .resolve(&self.inventory, backend.gpu_capable())
            .map_err(|e| ModelError::Load(format!("instance_group.device: {e}")))?;
        let onnx = std::fs::read(&file)
            .map_err(|e| ModelError::Load(format!("cannot read {}: {e}", file.display())))?;
        if onnx.is_empty() {
            return Err(ModelError::Load("model.onnx is empty (0 bytes)".into()));
        }
        crate::memory::prime(backend.as_ref(), device);
        let (session, measured) = crate::memory::measure(device, || {
            let session = backend.load(&onnx, config, device)?;
            if config.warmup {
                crate::warmup::run(session.as_ref())?;
            }
            Ok::<_, ModelError>(session)
        });
        let session = session?;
        let footprint = self.footprint(name, version, onnx.len() as u64, measured);
        LoadedModel::assemble(crate::loaded::Parts {
            name,
            version,
            config: config.clone(),
            session,
            backend: backend.name(),
            device,
            labels,
            bytes: footprint.bytes(),
        })
    }

    /// Stop serving a model (its files stay; `load` brings it back).
    pub fn unload(&self, name: &str) -> Result<(), RepoError> {
        let mut models = self.models.write().unwrap_or_else(|p| p.into_inner());
        match models.get_mut(name) {
            Some(e) => {
                e.versions.clear();
                e.reason = Some("unloaded".into());
                metrics::counter!(m::MODEL_UNLOADS, "model" => name.to_string(), "reason" => "request")
                    .increment(1);
                self.record_memory(&models);
                Ok(())
            }
            None if self.root.join(name).is_dir() => Ok(()),
            None => Err(RepoError::NotFound(name.to_string())),
        }
    }

    /// The version asked for, or the highest ready one. A model the budget unloaded is loaded
    /// again first (this blocks for the load).
    pub fn get(&self, name: &str, version: Option<&str>) -> Result<Arc<LoadedModel>, RepoError> {
        self.get_loading(name, version).map(|(m, _)| m)
    }

    /// `get`, and whether this call loaded the model again (a cold start). Callers that find
    /// it unloaded load it one at a time, each looking again first, so a burst after idling
    /// loads it once; one that finds it unloaded between its look and its read (the idle
    /// sweep) loads it rather than failing.
    pub fn get_loading(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<(Arc<LoadedModel>, bool), RepoError> {
        let mut loaded = false;
        for _ in 0..3 {
            if self.is_evicted(name) {
                let _one = self.reloads.lock().unwrap_or_else(|p| p.into_inner());
                if self.is_evicted(name) {
                    self.load(name)?;
                    loaded = true;
                }
            }
            match self.find(name, version) {
                Ok(found) => {
                    found.last_used.store(now_ms(), Ordering::Relaxed);
                    return Ok((found, loaded));
                }
                Err(RepoError::NotReady { .. }) if self.is_evicted(name) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(RepoError::NotReady {
            name: name.to_string(),
            reason: "unloaded again as soon as it was loaded (the memory budget)".into(),
        })
    }

    /// Whether the budget unloaded `name` (the next `get` loads it again, which takes a while).
    /// Whether a request for `name` (and `version`) would be served, without loading an evicted
    /// model or counting as a use: what readiness probes ask. An evicted model is servable (the
    /// next request loads it again); polling it must not keep it, or every model, in memory.
    pub fn is_servable(&self, name: &str, version: Option<&str>) -> bool {
        self.is_evicted(name) || self.find(name, version).is_ok()
    }

    pub fn is_evicted(&self, name: &str) -> bool {
        let models = self.models.read().unwrap_or_else(|p| p.into_inner());
        models.get(name).is_some_and(|e| {
            e.versions.is_empty() && matches!(e.reason.as_deref(), Some(EVICTED | IDLED))
        })
    }

    /// Keep `name` loaded however long it idles: a function keeps it warm (`workers.min`).
    pub fn keep_warm(&self, name: &str) {
        self.kept_warm
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string());
    }

    /// Whether any version of `name` is loaded and ready.
    pub fn is_loaded(&self, name: &str) -> bool {
        let models = self.models.read().unwrap_or_else(|p| p.into_inner());
        models
            .get(name)
            .is_some_and(|e| e.versions.values().any(|s| matches!(s, State::Ready(_))))
    }

    /// Unload `name` when every loaded version has gone unused for `idle_for` and none is in
    /// use (a function scaled to zero); the next `get` loads it again. Whether it was unloaded.
    pub fn unload_idle(&self, name: &str, idle_for: std::time::Duration) -> bool {
        if self
            .kept_warm
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(name)
        {
            return false;
        }
        let mut models = self.models.write().unwrap_or_else(|p| p.into_inner());
        let Some(entry) = models.get_mut(name) else {
            return false;
        };
        let since = now_ms().saturating_sub(idle_for.as_millis() as u64);
        let mut ready = entry.versions.values().filter_map(|s| match s {
            State::Ready(m) => Some(m),
            State::Unavailable(_) => None,
        });
        // The map holds one reference; any other is a request using it.
        let idle = ready.clone().next().is_some()
            && ready
                .all(|m| m.last_used.load(Ordering::Relaxed) <= since && Arc::strong_count(m) == 1);
        if !idle {
            return false;
        }
        entry.versions.clear();
        entry.reason = Some(IDLED.into());
        metrics::counter!(m::MODEL_UNLOADS, "model" => name.to_string(), "reason" => "idle")
            .increment(1);
        tracing::info!(model = %name, ?idle_for, "unloaded after idling; the next request loads it again");
        self.record_memory(&models);
        true
    }

    fn find(&self, name: &str, version: Option<&str>) -> Result<Arc<LoadedModel>, RepoError> {
        let models = self.models.read().unwrap_or_else(|p| p.into_inner());
        let entry = models
            .get(name)
            .ok_or_else(|| RepoError::NotFound(name.to_string()))?;
        let not_ready = |reason: &str| RepoError::NotReady {
            name: name.to_string(),
            reason: reason.to_string(),
        };
        match version.filter(|v| !v.is_empty()) {
            Some(v) => {
                let n: u64 = v.parse().map_err(|_| RepoError::NoVersion {
                    name: name.to_string(),
                    version: v.to_string(),
                })?;
                match entry.versions.get(&n) {
                    Some(State::Ready(m)) => Ok(m.clone()),
                    Some(State::Unavailable(r)) => Err(not_ready(r)),
                    None => Err(RepoError::NoVersion {
                        name: name.to_string(),
                        version: v.to_string(),
                    }),
                }
            }
            None => entry
                .versions
                .values()
                .rev()
                .find_map(|s| match s {
                    State::Ready(m) => Some(m.clone()),
                    State::Unavailable(_) => None,
                })
                .ok_or_else(|| not_ready(entry.reason.as_deref().unwrap_or("no version loaded"))),
        }
    }

    /// Every ready model version, for statistics.
    pub fn ready(&self) -> Vec<Arc<LoadedModel>> {
        let models = self.models.read().unwrap_or_else(|p| p.into_inner());
        models
            .values()
            .flat_map(|e| e.versions.values())
            .filter_map(|s| match s {
                State::Ready(m) => Some(m.clone()),
                State::Unavailable(_) => None,
            })
            .collect()
    }

    /// What `POST /v2/repository/index` lists: every model folder, loaded or not.
    pub fn index(&self) -> Vec<IndexEntry> {
        let models = self.models.read().unwrap_or_else(|p| p.into_inner());
        let mut rows = Vec::new();
        for name in self.names().unwrap_or_default() {
            let Some(entry) = models.get(&name) else {
                rows.push(IndexEntry {
                    name,
                    version: String::new(),
                    state: "UNAVAILABLE",
                    reason: "not loaded".into(),
                });
                continue;
            };
            if entry.versions.is_empty() {
                rows.push(IndexEntry {
                    name: name.clone(),
                    version: String::new(),
                    state: "UNAVAILABLE",
                    reason: entry.reason.clone().unwrap_or_default(),
                });
            }
            for (v, s) in &entry.versions {
                let (state, reason) = match s {
                    State::Ready(_) => ("READY", String::new()),
                    State::Unavailable(r) => ("UNAVAILABLE", r.clone()),
                };
                rows.push(IndexEntry {
                    name: name.clone(),
                    version: v.to_string(),
                    state,
                    reason,
                });
            }
        }
        rows
    }
}

fn read_config(dir: &Path) -> Result<ModelConfig, String> {
    let file = dir.join("config.yaml");
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    ModelConfig::parse(&text, Path::new("config.yaml")).map_err(|e| e.to_string())
}

/// The numbered version folders the policy serves, highest last.
fn pick_versions(dir: &Path, policy: &VersionPolicy) -> Result<Vec<u64>, String> {
    let mut found: Vec<u64> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    found.sort();
    let chosen: Vec<u64> = match policy {
        VersionPolicy::Latest => found.last().copied().into_iter().collect(),
        VersionPolicy::All => found.clone(),
        VersionPolicy::Specific(want) => {
            if let Some(v) = want.iter().find(|v| !found.contains(v)) {
                return Err(format!("version_policy: version {v} has no folder"));
            }
            want.clone()
        }
    };
    if chosen.is_empty() {
        return Err("no version folder (expected <model>/1/model.onnx)".into());
    }
    Ok(chosen)
}
