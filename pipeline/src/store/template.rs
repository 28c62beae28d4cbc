//! Output keys from a template (`thumbs/{key}/{size}.jpg`): deterministic, so the same input gives
//! the same keys and a replay overwrites instead of duplicating.

use std::collections::BTreeMap;

/// The variables every template may use; functions add their own (`{size}`).
pub const BUILT_IN: &[&str] = &["key", "stem", "ext", "bucket"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unclosed '{{' at byte {0}")]
    Unclosed(usize),
    #[error(
        "unknown variable {{{0}}}: known are {{key}}, {{stem}}, {{ext}}, {{bucket}} and the function's own"
    )]
    Unknown(String),
    #[error("{{{0}}} has no value for this output")]
    Missing(String),
    #[error("the key made, {0:?}, is not a valid key: {1}")]
    BadKey(String, String),
}

impl KeyTemplate {
    /// Parse, accepting the built-in variables and `extra` (the function kind's own).
    pub fn parse(text: &str, extra: &[&str]) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or(TemplateError::Unclosed(offset + open))?
                + open;
            let name = &rest[open + 1..close];
            if !BUILT_IN.contains(&name) && !extra.contains(&name) {
                return Err(TemplateError::Unknown(name.to_string()));
            }
            parts.push(Part::Var(name.to_string()));
            offset += close + 1;
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(KeyTemplate { parts })
    }

    /// The key of `artifact`, made from input `key` in `bucket` as its placement says.
    pub fn render_for(
        &self,
        artifact: &weir_functions::Artifact,
        bucket: &str,
        key: &str,
    ) -> Result<String, TemplateError> {
        match artifact.placement {
            weir_functions::Placement::Template => self.render(bucket, key, &artifact.vars),
            weir_functions::Placement::Beside => {
                let mut folder = self.folder();
                folder.parts.push(Part::Text(artifact.name.clone()));
                folder.render(bucket, key, &artifact.vars)
            }
        }
    }

    /// The template up to and including its last `/` (empty when it has none).
    pub fn folder(&self) -> KeyTemplate {
        let mut parts = self.parts.clone();
        while let Some(last) = parts.pop() {
            if let Part::Text(t) = last
                && let Some(i) = t.rfind('/')
            {
                parts.push(Part::Text(t[..=i].to_string()));
                break;
            }
        }
        KeyTemplate { parts }
    }

    /// Whether the template uses `{name}`.
    pub fn uses(&self, name: &str) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var(v) if v == name))
    }

    /// What every output key of input `key` starts with: the template rendered up to its first
    /// variable of the function's own, and whether that is the whole key (a template of built-in
    /// variables only). Where a source's outputs are, to see whether they are up to date.
    pub fn known_prefix(&self, bucket: &str, key: &str) -> (String, bool) {
        match self.fill(bucket, key, None) {
            Ok(all) => (all, true),
            Err((known, _)) => (known, false),
        }
    }

    /// The key for an input `key` in `bucket`, with the artifact's own variables.
    pub fn render(
        &self,
        bucket: &str,
        key: &str,
        vars: &BTreeMap<String, String>,
    ) -> Result<String, TemplateError> {
        let out = self
            .fill(bucket, key, Some(vars))
            .map_err(|(_, missing)| TemplateError::Missing(missing))?;
        super::check_key(&out).map_err(|e| TemplateError::BadKey(out.clone(), e))?;
        Ok(out)
    }

    /// The template filled in; at the first variable without a value, what was made so far
    /// and that variable's name.
    fn fill(
        &self,
        bucket: &str,
        key: &str,
        vars: Option<&BTreeMap<String, String>>,
    ) -> Result<String, (String, String)> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => match built_in(v, bucket, key) {
                    Some(value) => out.push_str(&value),
                    None => match vars.and_then(|vars| vars.get(v)) {
                        Some(value) => out.push_str(value),
                        None => return Err((out, v.clone())),
                    },
                },
            }
        }
        Ok(out)
    }
}

/// A built-in variable's value for input `key` in `bucket`; `None` for a function's own.
fn built_in(name: &str, bucket: &str, key: &str) -> Option<String> {
    let file = key.rsplit('/').next().unwrap_or(key);
    let (stem, ext) = match file.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (&key[..key.len() - e.len() - 1], e),
        _ => (key, ""),
    };
    Some(
        match name {
            "key" => key,
            "stem" => stem,
            "ext" => ext,
            "bucket" => bucket,
            _ => return None,
        }
        .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_known_prefix_stops_at_the_functions_own_variables() {
        let t = KeyTemplate::parse("thumbs/{key}/{size}.jpg", &["size"]).unwrap();
        assert_eq!(
            t.known_prefix("up", "a/b.jpg"),
            ("thumbs/a/b.jpg/".to_string(), false)
        );
        let t = KeyTemplate::parse("labels/{stem}.json", &[]).unwrap();
        assert_eq!(
            t.known_prefix("up", "a/b.jpg"),
            ("labels/a/b.json".to_string(), true)
        );
    }

    fn size(v: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("size".to_string(), v.to_string())])
    }

    #[test]
    fn renders_every_variable_deterministically() {
        let t = KeyTemplate::parse("thumbs/{key}/{size}.jpg", &["size"]).unwrap();
        let k = t
            .render("uploads", "photos/cat 1.JPG", &size("256"))
            .unwrap();
        assert_eq!(k, "thumbs/photos/cat 1.JPG/256.jpg");
        assert_eq!(
            t.render("uploads", "photos/cat 1.JPG", &size("256"))
                .unwrap(),
            k,
            "same input, same key"
        );
        let t = KeyTemplate::parse("{bucket}/{stem}.{ext}.json", &[]).unwrap();
        assert_eq!(
            t.render("up", "a/b.tar.gz", &BTreeMap::new()).unwrap(),
            "up/a/b.tar.gz.json"
        );
        assert_eq!(
            t.render("up", "dir.v2/noext", &BTreeMap::new()).unwrap(),
            "up/dir.v2/noext..json"
        );
        assert_eq!(
            t.render("up", ".hidden", &BTreeMap::new()).unwrap(),
            "up/.hidden..json"
        );
    }

    #[test]
    fn artifacts_placed_beside_go_in_the_templates_folder() {
        let t = KeyTemplate::parse("keyframes/{key}/{index}.jpg", &["index"]).unwrap();
        let mut a = weir_functions::Artifact {
            name: "manifest.json".into(),
            content_type: "application/json".into(),
            bytes: vec![],
            vars: BTreeMap::new(),
            placement: weir_functions::Placement::Beside,
        };
        assert_eq!(
            t.render_for(&a, "up", "v/clip.mp4").unwrap(),
            "keyframes/v/clip.mp4/manifest.json"
        );
        assert!(t.uses("index") && !t.uses("size") && !t.folder().uses("index"));
        let flat = KeyTemplate::parse("{stem}-{index}.jpg", &["index"]).unwrap();
        assert_eq!(
            flat.render_for(&a, "up", "v/clip.mp4").unwrap(),
            "manifest.json"
        );
        a.placement = weir_functions::Placement::Template;
        a.vars.insert("index".into(), "3".into());
        assert_eq!(
            t.render_for(&a, "up", "clip.mp4").unwrap(),
            "keyframes/clip.mp4/3.jpg"
        );
    }

    #[test]
    fn mistakes_are_named() {
        assert_eq!(
            KeyTemplate::parse("a/{key", &[]),
            Err(TemplateError::Unclosed(2))
        );
        assert_eq!(
            KeyTemplate::parse("{keyy}", &[]),
            Err(TemplateError::Unknown("keyy".into()))
        );
        let t = KeyTemplate::parse("{key}/{size}", &["size"]).unwrap();
        assert_eq!(
            t.render("b", "k", &BTreeMap::new()),
            Err(TemplateError::Missing("size".into()))
        );
        // A key is never a path, so `..` is just text; a key over S3's 1024 bytes is refused,
        // naming its length.
        assert_eq!(t.render("b", "k", &size("../../x")).unwrap(), "k/../../x");
        let long = "k".repeat(1020);
        match t.render("b", &long, &size("1024")) {
            Err(TemplateError::BadKey(_, why)) => assert!(why.contains("1025"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
