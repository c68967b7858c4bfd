//! The AWS shared configuration files (`~/.aws/credentials` and
//! `~/.aws/config`), read as the AWS SDKs and CLI read them, for the
//! credentials and region of the profile in effect.
//!
//! Precedence is the SDKs': keys in the environment (`AWS_ACCESS_KEY_ID`)
//! win and the files are not read; otherwise the profile named by
//! `AWS_PROFILE` (else `default`) is looked up in the credentials file
//! (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`, sections
//! `[NAME]`) over the config file (`AWS_CONFIG_FILE`, else
//! `~/.aws/config`, sections `[profile NAME]` and `[default]`). A profile
//! without static keys leaves credentials to object_store's own chain (web
//! identity, container, instance metadata); one that names a provider this
//! build does not run (`role_arn`, `sso_*`, `credential_process`) is an
//! error that says how to export its credentials instead.

use std::path::{Path, PathBuf};

use ini::Ini;

use crate::error::{Result, StorageError};

/// What the files say for the profile in effect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// The profile's name, for messages.
    pub name: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub region: Option<String>,
}

/// Keys naming credential providers this build does not run.
const UNSUPPORTED: &[&str] = &[
    "role_arn",
    "credential_process",
    "sso_session",
    "sso_start_url",
    "sso_account_id",
];

/// Reads the profile in effect, looking variables up with `var` (the
/// process environment in production). `None` when the environment holds
/// keys itself or when no file names the profile (and none was asked for).
pub fn profile(var: impl Fn(&str) -> Option<String>) -> Result<Option<Profile>> {
    if var("AWS_ACCESS_KEY_ID").is_some() {
        return Ok(None);
    }
    let home = var("HOME").map(PathBuf::from);
    let file = |env: &str, default: &str| {
        var(env)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
    };
    let asked = var("AWS_PROFILE").filter(|p| !p.is_empty());
    let name = asked.clone().unwrap_or_else(|| "default".to_string());
    let credentials = file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
    let config = file("AWS_CONFIG_FILE", "config");
    let config_section = if name == "default" {
        "default".to_string()
    } else {
        format!("profile {name}")
    };
    let mut found = false;
    let mut profile = Profile {
        name: name.clone(),
        ..Profile::default()
    };
    // The config file first, so the credentials file's keys override it.
    for (path, section) in [(&config, &config_section), (&credentials, &name)] {
        let Some(path) = path else { continue };
        let Some(ini) = load(path)? else { continue };
        let Some(props) = ini.section(Some(section.as_str())) else {
            continue;
        };
        found = true;
        let get = |k: &str| props.get(k).map(str::trim).filter(|v| !v.is_empty());
        if let Some(key) = UNSUPPORTED.iter().find(|k| get(k).is_some())
            && get("aws_access_key_id").is_none()
        {
            return Err(StorageError::Credentials {
                detail: format!(
                    "AWS profile `{name}` in {} gets its credentials through `{key}`, which mesh does not run; export them into the environment first (`eval \"$(aws configure export-credentials --profile {name} --format env)\"`)",
                    path.display()
                ),
            });
        }
        let set = |slot: &mut Option<String>, k: &str| {
            if let Some(v) = get(k) {
                *slot = Some(v.to_string());
            }
        };
        set(&mut profile.access_key_id, "aws_access_key_id");
        set(&mut profile.secret_access_key, "aws_secret_access_key");
        set(&mut profile.session_token, "aws_session_token");
        set(&mut profile.region, "region");
    }
    if !found {
        return match asked {
            Some(name) => Err(StorageError::Credentials {
                detail: format!(
                    "AWS_PROFILE is `{name}`, but neither {} nor {} has that profile; add it (`aws configure --profile {name}`) or unset AWS_PROFILE",
                    shown(&credentials),
                    shown(&config)
                ),
            }),
            None => Ok(None),
        };
    }
    if profile.access_key_id.is_some() != profile.secret_access_key.is_some() {
        return Err(StorageError::Credentials {
            detail: format!(
                "AWS profile `{name}` has only one of aws_access_key_id and aws_secret_access_key; give both (in {})",
                shown(&credentials)
            ),
        });
    }
    Ok(Some(profile))
}

/// The file at `path`, or `None` when there is none.
fn load(path: &Path) -> Result<Option<Ini>> {
    match Ini::load_from_file_noescape(path) {
        Ok(ini) => Ok(Some(ini)),
        Err(ini::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(ini::Error::Io(e)) => Err(StorageError::Credentials {
            detail: format!("cannot read {}: {e}", path.display()),
        }),
        Err(ini::Error::Parse(e)) => Err(StorageError::Credentials {
            detail: format!(
                "{}:{}:{}: {}; fix the file (it is INI, as `aws configure` writes it)",
                path.display(),
                e.line,
                e.col,
                e.msg
            ),
        }),
    }
}

fn shown(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map_or_else(|| "(no HOME)".to_string(), |p| p.display().to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::HashMap;

    use super::*;

    struct Files {
        dir: tempfile::TempDir,
        vars: HashMap<String, String>,
    }

    impl Files {
        fn new(credentials: &str, config: &str) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let aws = dir.path().join(".aws");
            std::fs::create_dir_all(&aws).unwrap();
            std::fs::write(aws.join("credentials"), credentials).unwrap();
            std::fs::write(aws.join("config"), config).unwrap();
            let mut vars = HashMap::new();
            vars.insert("HOME".into(), dir.path().display().to_string());
            Files { dir, vars }
        }
        fn with(mut self, k: &str, v: &str) -> Self {
            self.vars.insert(k.into(), v.into());
            self
        }
        fn read(&self) -> Result<Option<Profile>> {
            profile(|k| self.vars.get(k).cloned())
        }
    }

    const CREDENTIALS: &str = "# keys\n[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = sdefault\n\n[analytics]\naws_access_key_id=AKANALYTICS\naws_secret_access_key=s/an+alytics\naws_session_token = tok\n";
    const CONFIG: &str = "[default]\nregion = eu-west-1\n\n[profile analytics]\nregion = us-west-2\ns3 =\n  addressing_style = path\n\n[profile assumed]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = default\n";

    #[test]
    fn the_default_profile_merges_both_files() {
        let p = Files::new(CREDENTIALS, CONFIG).read().unwrap().unwrap();
        assert_eq!(p.access_key_id.as_deref(), Some("AKDEFAULT"));
        assert_eq!(p.secret_access_key.as_deref(), Some("sdefault"));
        assert_eq!(p.session_token, None);
        assert_eq!(p.region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn aws_profile_picks_a_named_profile() {
        let f = Files::new(CREDENTIALS, CONFIG).with("AWS_PROFILE", "analytics");
        let p = f.read().unwrap().unwrap();
        assert_eq!(p.access_key_id.as_deref(), Some("AKANALYTICS"));
        assert_eq!(p.secret_access_key.as_deref(), Some("s/an+alytics"));
        assert_eq!(p.session_token.as_deref(), Some("tok"));
        assert_eq!(p.region.as_deref(), Some("us-west-2"));
    }

    #[test]
    fn keys_in_the_environment_win() {
        let f = Files::new(CREDENTIALS, CONFIG).with("AWS_ACCESS_KEY_ID", "AKENV");
        assert_eq!(f.read().unwrap(), None);
    }

    #[test]
    fn the_files_can_live_elsewhere() {
        let f = Files::new("", "");
        let other = f.dir.path().join("elsewhere");
        std::fs::write(
            &other,
            "[default]\naws_access_key_id=A\naws_secret_access_key=B\n",
        )
        .unwrap();
        let f = f.with("AWS_SHARED_CREDENTIALS_FILE", other.to_str().unwrap());
        assert_eq!(
            f.read().unwrap().unwrap().access_key_id.as_deref(),
            Some("A")
        );
    }

    #[test]
    fn no_files_and_no_profile_asked_is_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().display().to_string();
        assert_eq!(
            profile(|k| (k == "HOME").then(|| home.clone())).unwrap(),
            None
        );
    }

    #[test]
    fn a_missing_profile_that_was_asked_for_is_an_error() {
        let f = Files::new(CREDENTIALS, CONFIG).with("AWS_PROFILE", "nope");
        let e = f.read().unwrap_err().to_string();
        assert!(e.contains("AWS_PROFILE is `nope`"), "{e}");
        assert!(e.contains(".aws/credentials"), "{e}");
    }

    #[test]
    fn a_provider_this_build_does_not_run_says_how_to_export() {
        let f = Files::new(CREDENTIALS, CONFIG).with("AWS_PROFILE", "assumed");
        let e = f.read().unwrap_err().to_string();
        assert!(e.contains("`role_arn`"), "{e}");
        assert!(e.contains("aws configure export-credentials"), "{e}");
    }

    #[test]
    fn half_a_key_pair_is_an_error() {
        let f = Files::new("[default]\naws_access_key_id = A\n", "");
        let e = f.read().unwrap_err().to_string();
        assert!(e.contains("only one of"), "{e}");
    }

    #[test]
    fn a_broken_file_names_its_line() {
        let f = Files::new("[default\naws_access_key_id = A\n", "");
        let e = f.read().unwrap_err().to_string();
        assert!(e.contains(".aws/credentials:3:1:"), "{e}");
    }
}
