//! The `keyframes` kind's `params`, as written in a function spec.

use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::thumbnail::Format;

/// Which frames a video gives.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Mode {
    /// The stream's own key frames; nothing else is decoded.
    #[default]
    Keyframes,
    /// One frame per interval: the first frame at or after each multiple of it.
    Interval(Duration),
    /// Frames where the picture changes by at least this score (0..1), and the first frame.
    Scene(f64),
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Keyframes => "keyframes",
            Mode::Interval(_) => "interval",
            Mode::Scene(_) => "scene",
        }
    }
}

/// `params` of a `keyframes` function.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyframesParams {
    /// `keyframes`, `{ interval: 2s }` or `{ scene: 0.3 }`.
    #[serde(default)]
    pub mode: Mode,
    /// `jpeg` or `webp`.
    #[serde(default = "default_format")]
    pub format: Format,
    /// Encoder quality 1..=100.
    #[serde(default = "default_quality")]
    pub quality: u8,
    /// Largest output width (the height keeps the aspect); unset: the video's own size.
    #[serde(default)]
    pub max_width: Option<u32>,
    /// Frames given at most; a video with more stops there and says so (`capped`).
    #[serde(default = "default_max_frames")]
    pub max_frames: usize,
    /// Longest video accepted, as its container declares it (or as read).
    #[serde(default = "default_max_duration", deserialize_with = "duration")]
    pub max_duration: Duration,
    /// Largest picture accepted, checked on the container's header before a decoder opens.
    #[serde(default = "default_max_pixels")]
    pub max_pixels: u64,
}

fn default_format() -> Format {
    Format::Jpeg
}
fn default_quality() -> u8 {
    85
}
fn default_max_frames() -> usize {
    200
}
fn default_max_duration() -> Duration {
    Duration::from_secs(3 * 3600)
}
/// 8K UHD (7680×4320).
fn default_max_pixels() -> u64 {
    33_177_600
}

impl KeyframesParams {
    pub fn new(mode: Mode) -> Self {
        KeyframesParams {
            mode,
            format: default_format(),
            quality: default_quality(),
            max_width: None,
            max_frames: default_max_frames(),
            max_duration: default_max_duration(),
            max_pixels: default_max_pixels(),
        }
    }

    /// Checks what serde cannot. Returns (field, what was expected) on the first problem.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.format == Format::Png {
            return Err(("format", "expected jpeg or webp".into()));
        }
        if !(1..=100).contains(&self.quality) {
            return Err(("quality", "expected 1 to 100".into()));
        }
        if self
            .max_width
            .is_some_and(|w| w == 0 || w > self.format.max_side())
        {
            let most = self.format.max_side();
            return Err(("max_width", format!("expected 1 to {most}")));
        }
        if !(1..=100_000).contains(&self.max_frames) {
            return Err(("max_frames", "expected 1 to 100000".into()));
        }
        if self.max_duration.is_zero() || self.max_pixels == 0 {
            return Err(("max_duration", "expected more than zero".into()));
        }
        match self.mode {
            Mode::Interval(d) if d < Duration::from_millis(1) => {
                Err(("mode.interval", "expected at least 1ms".into()))
            }
            Mode::Scene(t) if !(t > 0.0 && t < 1.0) => {
                Err(("mode.scene", "expected a score between 0 and 1".into()))
            }
            _ => Ok(()),
        }
    }
}

/// A duration with its unit, as everywhere in the config: `2s`, `500ms`, `1m 30s`.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = serde_yaml::Value::deserialize(d)?;
    let Some(t) = text.as_str() else {
        return Err(de::Error::custom(
            "expected a duration with its unit, like 2s or 500ms",
        ));
    };
    humantime::parse_duration(t).map_err(|e| {
        de::Error::custom(format!(
            "{t:?} is not a duration ({e}); expected one like 2s or 500ms"
        ))
    })
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ModeVisitor)
    }
}

struct ModeVisitor;

impl<'de> Visitor<'de> for ModeVisitor {
    type Value = Mode;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("keyframes, { interval: <duration> } or { scene: <score 0..1> }")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Mode, E> {
        match v {
            "keyframes" => Ok(Mode::Keyframes),
            other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Mode, A::Error> {
        #[derive(Deserialize)]
        struct Every(#[serde(deserialize_with = "duration")] Duration);
        let key: String = map
            .next_key()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let mode = match key.as_str() {
            "interval" => Mode::Interval(map.next_value::<Every>()?.0),
            "scene" => Mode::Scene(map.next_value()?),
            other => return Err(de::Error::unknown_field(other, &["interval", "scene"])),
        };
        if map.next_key::<String>()?.is_some() {
            return Err(de::Error::custom(
                "expected one of interval or scene, not both",
            ));
        }
        Ok(mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<KeyframesParams, String> {
        let p: KeyframesParams = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
        p.validate().map_err(|(f, m)| format!("{f}: {m}"))?;
        Ok(p)
    }

    #[test]
    fn modes_read_as_the_spec_writes_them() {
        assert_eq!(parse("{}").unwrap().mode, Mode::Keyframes);
        assert_eq!(parse("mode: keyframes").unwrap().mode, Mode::Keyframes);
        assert_eq!(
            parse("mode: { interval: 2s }").unwrap().mode,
            Mode::Interval(Duration::from_secs(2))
        );
        assert_eq!(
            parse("mode: { interval: 500ms }").unwrap().mode,
            Mode::Interval(Duration::from_millis(500))
        );
        assert_eq!(
            parse("mode: { scene: 0.3 }").unwrap().mode,
            Mode::Scene(0.3)
        );
        let p = parse("{ max_width: 640, format: webp, max_duration: 10m }").unwrap();
        assert_eq!((p.max_width, p.format), (Some(640), Format::Webp));
        assert_eq!(p.max_duration, Duration::from_secs(600));
    }

    #[test]
    fn mistakes_say_what_was_expected() {
        for (yaml, says) in [
            ("mode: everything", "keyframes, { interval"),
            ("mode: { interval: soon }", "not a duration"),
            ("mode: { interval: 2 }", "with its unit"),
            ("mode: { scene: 1.5 }", "between 0 and 1"),
            ("mode: { scene: 0.3, interval: 2s }", "not both"),
            ("mode: { every: 2s }", "unknown field"),
            ("format: png", "jpeg or webp"),
            ("max_width: 0", "max_width"),
            ("max_frames: 0", "max_frames"),
            ("qualty: 3", "unknown field"),
        ] {
            let e = parse(yaml).unwrap_err();
            assert!(e.contains(says), "{yaml}: {e}");
        }
    }
}
