//! The model memory budget: when loading a model takes a device past its budget, the least
//! recently used idle models are unloaded (Triton keeps every model forever; serverless cannot).
//! A model in use by a request is never unloaded; one unloaded this way loads again when asked.

/// One loaded model version, as the budget sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Resident {
    pub name: String,
    pub bytes: u64,
    /// Milliseconds since the epoch of its last use (load counts as use).
    pub last_used: u64,
    /// Whether a request holds it right now.
    pub busy: bool,
}

/// Which models to unload, oldest use first, so that the rest fits in `budget`. `keep` (the model
/// just loaded) stays. May leave the total over budget when every other model is busy.
pub fn evictions(resident: &[Resident], budget: u64, keep: &str) -> Vec<String> {
    let mut total: u64 = resident.iter().map(|r| r.bytes).sum();
    let mut idle: Vec<&Resident> = resident
        .iter()
        .filter(|r| !r.busy && r.name != keep)
        .collect();
    idle.sort_by_key(|r| r.last_used);
    let mut out = Vec::new();
    for r in idle {
        if total <= budget {
            break;
        }
        total -= r.bytes;
        out.push(r.name.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str, bytes: u64, last_used: u64, busy: bool) -> Resident {
        Resident {
            name: name.into(),
            bytes,
            last_used,
            busy,
        }
    }

    #[test]
    fn the_least_recently_used_idle_models_go_first() {
        let models = [
            r("a", 10, 1, false),
            r("b", 10, 2, false),
            r("c", 10, 3, false),
        ];
        assert_eq!(evictions(&models, 30, "c"), Vec::<String>::new());
        assert_eq!(evictions(&models, 20, "c"), vec!["a"]);
        assert_eq!(evictions(&models, 10, "c"), vec!["a", "b"]);
        // The model just loaded stays even when it is the oldest.
        assert_eq!(evictions(&models, 20, "a"), vec!["b"]);
        // Busy models stay; the budget may be exceeded rather than fail a request.
        let busy = [
            r("a", 10, 1, true),
            r("b", 10, 2, false),
            r("c", 10, 3, false),
        ];
        assert_eq!(evictions(&busy, 10, "c"), vec!["b"]);
    }
}
