//! One page of a listing, as S3 forms it: keys in UTF-8 byte order under a prefix, keys that
//! share a segment up to the delimiter rolled into one common prefix, resuming after a marker.
//! Pure over a `seek` that finds the first key at or after a position, so it is tested without
//! an index and runs over the real one with one seek per entry.

/// What a client asked for.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Resume after this key or common prefix (V1 marker, V2 start-after or continuation).
    pub after: Option<String>,
    pub max_keys: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListPage<M> {
    pub objects: Vec<(String, M)>,
    pub prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or common prefix on this page: where the next page resumes.
    pub last: Option<String>,
}

/// The smallest string greater than every string that starts with `p`; `None` when there is
/// none (every character is `char::MAX`).
pub fn prefix_end(p: &str) -> Option<String> {
    let mut chars: Vec<char> = p.chars().collect();
    while let Some(c) = chars.pop() {
        let mut next = c as u32 + 1;
        if (0xD800..0xE000).contains(&next) {
            next = 0xE000;
        }
        if let Some(n) = char::from_u32(next) {
            chars.push(n);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// `seek(from, inclusive)` gives the first key `>= from` (or `> from`) with its value.
pub fn page<M, E>(
    q: &ListQuery,
    mut seek: impl FnMut(&str, bool) -> Result<Option<(String, M)>, E>,
) -> Result<ListPage<M>, E> {
    let prefix = q.prefix.as_str();
    let delimiter = q.delimiter.as_deref().filter(|d| !d.is_empty());
    let rolled = |k: &str| -> Option<String> {
        let d = delimiter?;
        let rest = k.strip_prefix(prefix)?;
        rest.find(d)
            .map(|i| k[..prefix.len() + i + d.len()].to_string())
    };
    let mut out = ListPage {
        objects: Vec::new(),
        prefixes: Vec::new(),
        truncated: false,
        last: None,
    };
    // Resume: after a marker (skipping everything under it when it is a common prefix), or at
    // the prefix.
    let mut pos: Option<(String, bool)> = match q.after.as_deref() {
        Some(a) if a >= prefix => match rolled(a) {
            Some(cp) if cp == a => prefix_end(a).map(|e| (e, true)),
            _ => Some((a.to_string(), false)),
        },
        _ => Some((prefix.to_string(), true)),
    };
    while let Some((from, inclusive)) = pos.take() {
        let Some((key, value)) = seek(&from, inclusive)? else {
            break;
        };
        if !key.starts_with(prefix) {
            break;
        }
        if out.objects.len() + out.prefixes.len() >= q.max_keys {
            out.truncated = true;
            break;
        }
        match rolled(&key) {
            Some(cp) => {
                pos = prefix_end(&cp).map(|e| (e, true));
                out.last = Some(cp.clone());
                out.prefixes.push(cp);
            }
            None => {
                pos = Some((key.clone(), false));
                out.last = Some(key.clone());
                out.objects.push((key, value));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn list(keys: &[&str], q: &ListQuery) -> ListPage<()> {
        let set: BTreeSet<String> = keys.iter().map(|k| k.to_string()).collect();
        page::<(), ()>(q, |from, inclusive| {
            Ok(set
                .range(from.to_string()..)
                .find(|k| inclusive || k.as_str() != from)
                .map(|k| (k.clone(), ())))
        })
        .unwrap()
    }

    fn keys(p: &ListPage<()>) -> Vec<&str> {
        p.objects.iter().map(|(k, _)| k.as_str()).collect()
    }

    const KEYS: &[&str] = &["a", "a/b", "a/c/d", "b", "photos/", "photos/x.jpg", "é"];

    #[test]
    fn delimiters_roll_keys_into_common_prefixes() {
        let q = ListQuery {
            delimiter: Some("/".into()),
            max_keys: 1000,
            ..ListQuery::default()
        };
        let p = list(KEYS, &q);
        assert_eq!(keys(&p), ["a", "b", "é"]);
        assert_eq!(p.prefixes, ["a/", "photos/"]);
        assert!(!p.truncated);
        let q = ListQuery {
            prefix: "a/".into(),
            ..q
        };
        let p = list(KEYS, &q);
        assert_eq!(keys(&p), ["a/b"]);
        assert_eq!(p.prefixes, ["a/c/"]);
    }

    #[test]
    fn pages_resume_after_the_last_entry_without_repeats() {
        for delimiter in [None, Some("/".to_string())] {
            let mut seen = Vec::new();
            let mut after = None;
            loop {
                let q = ListQuery {
                    delimiter: delimiter.clone(),
                    after: after.clone(),
                    max_keys: 1,
                    ..ListQuery::default()
                };
                let p = list(KEYS, &q);
                seen.extend(keys(&p).iter().map(|k| k.to_string()));
                seen.extend(p.prefixes.clone());
                if !p.truncated {
                    break;
                }
                after = p.last.clone();
            }
            let want: Vec<&str> = match delimiter {
                None => KEYS.to_vec(),
                Some(_) => vec!["a", "a/", "b", "photos/", "é"],
            };
            assert_eq!(seen, want, "{delimiter:?}");
        }
    }

    #[test]
    fn prefix_end_bounds_every_key_under_the_prefix() {
        assert_eq!(prefix_end("a/").as_deref(), Some("a0"));
        assert_eq!(prefix_end("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        let e = prefix_end("x/é").unwrap();
        for k in ["x/é", "x/é/", "x/é\u{10FFFF}zz"] {
            assert!(k < e.as_str(), "{k}");
        }
    }

    #[test]
    fn max_keys_zero_reports_truncation_only() {
        let q = ListQuery {
            max_keys: 0,
            ..ListQuery::default()
        };
        let p = list(KEYS, &q);
        assert!(p.objects.is_empty() && p.truncated);
    }
}
