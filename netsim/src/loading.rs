//! Profiles from TOML or JSON files, and loss traces from text files.

use std::path::Path;

use serde::Deserialize;

use crate::error::ImpairError;
use crate::link::LinkConfig;
use crate::models::loss::{parse_trace, LossModel, Per};
use crate::profiles::{Profile, BUILTIN_NAMES};

/// On-disk form of a profile: everything optional, `reverse` defaults to `forward`.
#[derive(Deserialize)]
pub(crate) struct ProfileFile {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    forward: LinkConfig,
    #[serde(default)]
    reverse: Option<LinkConfig>,
}

impl From<ProfileFile> for Profile {
    fn from(f: ProfileFile) -> Self {
        let reverse = f.reverse.unwrap_or_else(|| f.forward.clone());
        Profile {
            name: f.name,
            description: f.description,
            source: f.source,
            forward: f.forward,
            reverse,
        }
    }
}

impl Profile {
    /// Loads a profile from a `.toml` or `.json` file. Missing fields take their defaults
    /// (a perfect link), a missing `reverse` copies `forward`, a missing `name` is the file
    /// stem, and trace files are read relative to the profile file.
    pub fn load(path: &Path) -> Result<Profile, ImpairError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if !matches!(ext.as_deref(), Some("toml" | "json")) {
            return Err(ImpairError::Extension(path.to_owned()));
        }
        let text = std::fs::read_to_string(path).map_err(|source| ImpairError::Io {
            path: path.to_owned(),
            source,
        })?;
        let parse_err = |message: String| ImpairError::Parse {
            path: path.to_owned(),
            message,
        };
        let mut profile: Profile = match ext.as_deref() {
            Some("toml") => toml::from_str(&text).map_err(|e| parse_err(e.to_string()))?,
            Some("json") => serde_json::from_str(&text).map_err(|e| parse_err(e.to_string()))?,
            _ => return Err(ImpairError::Extension(path.to_owned())),
        };
        if profile.name.is_empty() {
            profile.name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        for link in [&mut profile.forward, &mut profile.reverse] {
            if let LossModel::Trace {
                pattern,
                file: Some(file),
                per,
            } = &link.loss
            {
                if pattern.trim().is_empty() {
                    link.loss = LossModel::trace_from_file(&dir.join(file), *per)?;
                }
            }
        }
        profile.forward.validate("forward")?;
        profile.reverse.validate("reverse")?;
        Ok(profile)
    }

    /// A builtin profile by name, else a profile file by path. The error lists the builtins.
    pub fn resolve(name_or_path: &str) -> Result<Profile, ImpairError> {
        if let Some(p) = Profile::builtin(name_or_path) {
            return Ok(p);
        }
        let path = Path::new(name_or_path);
        if path.is_file() {
            return Profile::load(path);
        }
        Err(ImpairError::UnknownProfile {
            name: name_or_path.to_owned(),
            builtins: BUILTIN_NAMES.join(", "),
        })
    }
}

impl LossModel {
    /// A trace model read from a text file (`0`/`1` characters, one per entry or per line;
    /// whitespace, commas and `#` comments ignored).
    pub fn trace_from_file(path: &Path, per: Per) -> Result<LossModel, ImpairError> {
        let text = std::fs::read_to_string(path).map_err(|source| ImpairError::Io {
            path: path.to_owned(),
            source,
        })?;
        let entries = parse_trace(&text).map_err(|message| ImpairError::Parse {
            path: path.to_owned(),
            message,
        })?;
        let pattern: String = entries.iter().map(|&l| if l { '1' } else { '0' }).collect();
        Ok(LossModel::Trace {
            pattern,
            file: Some(path.to_owned()),
            per,
        })
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use crate::{DelayModel, Link, Step};

    #[test]
    fn profiles_load_from_toml_and_json() {
        let toml_text = r#"
            description = "test"
            [forward]
            duplicate = 0.001
            [forward.loss]
            model = "gilbert_elliott"
            p = 0.01
            r = 0.1
            loss_good = 0
            loss_bad = 1
            step = { kind = "per_packet" }
            [forward.delay]
            base_ms = 12.5
            jitter_ms = 1
            [reverse.loss]
            model = "bernoulli"
            p = 0.02
        "#;
        let path = temp_path("a", "toml");
        std::fs::write(&path, toml_text).unwrap();
        let p = Profile::load(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(p.name, path.file_stem().unwrap().to_string_lossy());
        assert_eq!(
            p.forward.loss,
            LossModel::GilbertElliott {
                p: 0.01,
                r: 0.1,
                loss_good: 0.0,
                loss_bad: 1.0,
                step: Step::PerPacket
            }
        );
        assert_eq!(p.forward.delay.base_ms, 12.5);
        assert_eq!(p.forward.delay.correlation, 0.99); // default
        assert_eq!(p.forward.duplicate, 0.001);
        assert_eq!(p.reverse.loss, LossModel::Bernoulli { p: 0.02 });
        assert_eq!(p.reverse.delay, DelayModel::default());

        // JSON round trip of a builtin; a missing reverse copies forward.
        let wifi = Profile::builtin("wifi").unwrap();
        let path = temp_path("b", "json");
        std::fs::write(&path, serde_json::to_string_pretty(&wifi).unwrap()).unwrap();
        assert_eq!(Profile::load(&path).unwrap(), wifi);
        std::fs::write(
            &path,
            r#"{"name": "j", "forward": {"loss": {"model": "bernoulli", "p": 0.3}}}"#,
        )
        .unwrap();
        let j = Profile::resolve(path.to_str().unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(j.name, "j");
        assert_eq!(j.reverse, j.forward);
        assert_eq!(j.forward.loss, LossModel::Bernoulli { p: 0.3 });

        // TOML round trip of every builtin.
        for name in Profile::builtin_names() {
            let b = Profile::builtin(name).unwrap();
            let path = temp_path(name, "toml");
            std::fs::write(&path, toml::to_string(&b).unwrap()).unwrap();
            let back = Profile::load(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            assert_eq!(back, b, "{name}");
        }
    }

    #[test]
    fn profile_trace_file_is_read_relative_to_the_profile() {
        let trace = temp_path("trace", "txt");
        std::fs::write(&trace, "1\n1\n0\n0\n0\n0\n0\n0\n0\n0\n").unwrap();
        let profile = temp_path("traced", "toml");
        std::fs::write(
            &profile,
            format!(
                "[forward.loss]\nmodel = \"trace\"\nfile = \"{}\"\n",
                trace.file_name().unwrap().to_string_lossy()
            ),
        )
        .unwrap();
        let p = Profile::load(&profile).unwrap();
        std::fs::remove_file(&trace).unwrap();
        std::fs::remove_file(&profile).unwrap();
        assert!((p.forward.expected_loss() - 0.2).abs() < 1e-12);
        let lost = losses(&mut Link::new(&p.forward, 0), 5 * MS, 20);
        assert_eq!(lost.iter().filter(|&&l| l).count(), 4);
        assert!(lost[0] && lost[1] && !lost[2] && lost[10]);
    }

    #[test]
    fn example_profile_file_loads() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/profiles/example.toml");
        let p = Profile::load(Path::new(path)).unwrap();
        assert_eq!(p.name, "example");
        assert!(!p.description.is_empty());
        assert!(matches!(
            p.forward.loss,
            LossModel::GilbertElliott {
                step: Step::Slice { .. },
                ..
            }
        ));
        assert!(p.forward.outages.is_some());
        assert!(p.forward.delay.spike_rate_per_min > 0.0);
        assert_ne!(p.reverse, p.forward);
        let mut link = Link::new(&p.forward, 1);
        run(&mut link, 5 * MS, 1000);
        assert_eq!(link.stats().offered, 1000);
    }

    #[test]
    fn unknown_names_and_bad_files_give_clear_errors() {
        let e = Profile::resolve("no-such-profile").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("no-such-profile"), "{msg}");
        for name in Profile::builtin_names() {
            assert!(msg.contains(name), "{msg}");
        }
        assert!(matches!(Profile::resolve("lte"), Ok(p) if p.name == "lte"));
        assert!(Profile::builtin("LTE ").is_none());

        let path = temp_path("bad", "toml");
        std::fs::write(&path, "[forward.loss]\nmodel = \"bernoulli\"\np = 1.5\n").unwrap();
        let e = Profile::load(&path).unwrap_err();
        assert!(matches!(e, ImpairError::Invalid(_)), "{e}");
        std::fs::write(&path, "[forward.loss]\nmodel = \"lossy\"\n").unwrap();
        let e = Profile::load(&path).unwrap_err();
        assert!(matches!(e, ImpairError::Parse { .. }), "{e}");
        std::fs::remove_file(&path).unwrap();
        let e = Profile::load(&temp_path("missing", "toml")).unwrap_err();
        assert!(matches!(e, ImpairError::Io { .. }), "{e}");
        let e = Profile::load(Path::new("profile.yaml")).unwrap_err();
        assert!(matches!(e, ImpairError::Extension(_)), "{e}");
        assert!(e.to_string().contains(".toml or .json"), "{e}");
    }
}
