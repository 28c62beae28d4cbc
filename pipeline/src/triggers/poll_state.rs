//! What a bucket poller has already seen, in `<data>/pollers.redb`: (poller, key) → (etag, last
//! modified). A listing is compared with it page by page, in key order, over the same key range,
//! so memory holds one page and its matching state, never a whole bucket's listing.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, TableDefinition};

use crate::store::ObjectInfo;

/// (poller id, key) → (etag, last modified in ms).
const SEEN: TableDefinition<(&str, &str), (&str, u64)> = TableDefinition::new("seen");

/// redb caches up to 1 GiB by default; the state is read once per page, in order.
const CACHE: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
#[error("the poller state {path}: {message}")]
pub struct StateError {
    path: String,
    message: String,
}

#[derive(Clone)]
pub struct PollState {
    db: Arc<Database>,
    path: String,
}

/// One page's verdict: objects to emit (new, or a different version), keys to forget (deleted).
#[derive(Debug, Default, PartialEq)]
pub struct Diff<'a> {
    pub changed: Vec<&'a ObjectInfo>,
    pub gone: Vec<String>,
}

/// Compare one page of the listing with the state over the same key range. Both are in key
/// order. An object is a new version when its etag or its last-modified time differs, so a
/// deleted and re-created object fires again even with the same bytes.
pub fn diff<'a>(listed: &'a [ObjectInfo], known: &[(String, String, u64)]) -> Diff<'a> {
    let mut d = Diff::default();
    let mut k = known.iter().peekable();
    for o in listed {
        while let Some((key, _, _)) = k.peek() {
            if key.as_str() < o.key.as_str() {
                d.gone.push(key.clone());
                k.next();
            } else {
                break;
            }
        }
        match k.peek() {
            Some((key, etag, modified)) if *key == o.key => {
                if *etag != o.etag || *modified != o.modified_ms {
                    d.changed.push(o);
                }
                k.next();
            }
            _ => d.changed.push(o),
        }
    }
    d.gone.extend(k.map(|(key, _, _)| key.clone()));
    d
}

impl PollState {
    pub fn open(path: &Path) -> Result<PollState, StateError> {
        let name = path.display().to_string();
        let fail = |e: redb::Error| StateError {
            path: name.clone(),
            message: e.to_string(),
        };
        let db = redb::Builder::new()
            .set_cache_size(CACHE)
            .create(path)
            .map_err(|e| fail(e.into()))?;
        let tx = db.begin_write().map_err(|e| fail(e.into()))?;
        tx.open_table(SEEN).map_err(|e| fail(e.into()))?;
        tx.commit().map_err(|e| fail(e.into()))?;
        Ok(PollState {
            db: Arc::new(db),
            path: name,
        })
    }

    fn fail(&self, e: impl Into<redb::Error>) -> StateError {
        StateError {
            path: self.path.clone(),
            message: e.into().to_string(),
        }
    }

    /// What `poller` saw with keys after `after` (exclusive) up to `upto` (inclusive; to the
    /// end when `None`), in key order. Blocking I/O.
    pub fn known(
        &self,
        poller: &str,
        prefix: &str,
        after: Option<&str>,
        upto: Option<&str>,
    ) -> Result<Vec<(String, String, u64)>, StateError> {
        let tx = self.db.begin_read().map_err(|e| self.fail(e))?;
        let t = tx.open_table(SEEN).map_err(|e| self.fail(e))?;
        let from = after.unwrap_or(prefix);
        let mut out = Vec::new();
        for row in t.range((poller, from)..).map_err(|e| self.fail(e))? {
            let (k, v) = row.map_err(|e| self.fail(e))?;
            let (id, key) = k.value();
            if id != poller || !key.starts_with(prefix) || upto.is_some_and(|u| key > u) {
                break;
            }
            if Some(key) == after {
                continue;
            }
            let (etag, modified) = v.value();
            out.push((key.to_string(), etag.to_string(), modified));
        }
        Ok(out)
    }

    /// Record a page's outcome in one commit. Blocking I/O.
    pub fn record(
        &self,
        poller: &str,
        changed: &[&ObjectInfo],
        gone: &[String],
    ) -> Result<(), StateError> {
        let tx = self.db.begin_write().map_err(|e| self.fail(e))?;
        {
            let mut t = tx.open_table(SEEN).map_err(|e| self.fail(e))?;
            for o in changed {
                t.insert((poller, o.key.as_str()), (o.etag.as_str(), o.modified_ms))
                    .map_err(|e| self.fail(e))?;
            }
            for key in gone {
                t.remove((poller, key.as_str())).map_err(|e| self.fail(e))?;
            }
        }
        tx.commit().map_err(|e| self.fail(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(key: &str, etag: &str, modified: u64) -> ObjectInfo {
        ObjectInfo {
            key: key.into(),
            size: 1,
            etag: etag.into(),
            modified_ms: modified,
        }
    }

    fn known(rows: &[(&str, &str, u64)]) -> Vec<(String, String, u64)> {
        rows.iter()
            .map(|(k, e, m)| (k.to_string(), e.to_string(), *m))
            .collect()
    }

    #[test]
    fn new_changed_recreated_and_deleted_objects_are_told_apart() {
        let listed = [
            obj("a", "1", 10), // unchanged
            obj("b", "2", 20), // new
            obj("c", "9", 30), // new content
            obj("d", "4", 99), // deleted and re-created with the same bytes
        ];
        let seen = known(&[
            ("a", "1", 10),
            ("aa", "x", 5),
            ("c", "3", 30),
            ("d", "4", 40),
            ("e", "5", 50),
        ]);
        let d = diff(&listed, &seen);
        let keys: Vec<&str> = d.changed.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["b", "c", "d"]);
        assert_eq!(d.gone, ["aa", "e"]);
        assert_eq!(diff(&[], &seen).gone.len(), 5);
        assert_eq!(diff(&listed, &[]).changed.len(), 4);
    }

    #[test]
    fn state_ranges_follow_the_pages() {
        let dir = tempfile::tempdir().unwrap();
        let s = PollState::open(&dir.path().join("p.redb")).unwrap();
        let objs: Vec<ObjectInfo> = ["p/1", "p/2", "p/3", "q/1"]
            .iter()
            .map(|k| obj(k, "e", 1))
            .collect();
        let refs: Vec<&ObjectInfo> = objs.iter().collect();
        s.record("f", &refs, &[]).unwrap();
        s.record("g", &refs[..1], &[]).unwrap();
        let keys = |v: Vec<(String, String, u64)>| v.into_iter().map(|r| r.0).collect::<Vec<_>>();
        assert_eq!(
            keys(s.known("f", "p/", None, None).unwrap()),
            ["p/1", "p/2", "p/3"]
        );
        assert_eq!(
            keys(s.known("f", "p/", Some("p/1"), Some("p/2")).unwrap()),
            ["p/2"]
        );
        assert_eq!(keys(s.known("f", "", Some("p/3"), None).unwrap()), ["q/1"]);
        assert_eq!(keys(s.known("g", "", None, None).unwrap()), ["p/1"]);
        s.record("f", &[], &["p/2".into()]).unwrap();
        assert_eq!(
            keys(s.known("f", "p/", None, None).unwrap()),
            ["p/1", "p/3"]
        );
    }
}
