//! The grading rules: the one place that decides whether a change breaks
//! consumers. `docs/contracts.md` documents this table; keep them in step.

use serde::Serialize;

use crate::diff::ChangeKind;

/// How a change affects the consumers of a contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Grade {
    /// Only documentation changed.
    Cosmetic,
    /// Every existing reader keeps working and keeps every guarantee.
    Compatible,
    /// A reader relying on the old contract can fail or get different data.
    Breaking,
}

impl Grade {
    pub fn as_str(&self) -> &'static str {
        match self {
            Grade::Cosmetic => "cosmetic",
            Grade::Compatible => "compatible",
            Grade::Breaking => "breaking",
        }
    }
}

/// The grade of one change.
pub fn grade(kind: &ChangeKind) -> Grade {
    use ChangeKind as K;
    use Grade::*;
    match kind {
        K::OutputAdded => Compatible,
        K::OutputRemoved => Breaking,
        K::ColumnAdded { .. } => Compatible,
        K::ColumnRemoved => Breaking,
        K::FieldAdded { .. } => Compatible,
        K::FieldRemoved => Breaking,
        K::ColumnRenamed { .. } => Breaking,
        K::TypeWidened { .. } => Compatible,
        K::TypeNarrowed { .. } => Breaking,
        K::TypeChanged { .. } => Breaking,
        K::NullabilityTightened => Compatible,
        K::NullabilityLoosened => Breaking,
        K::PrimaryKeyAdded { .. } => Compatible,
        K::PrimaryKeyRemoved { .. } => Breaking,
        K::PrimaryKeyChanged { .. } => Breaking,
        K::ClassificationRaised { .. } => Breaking,
        K::ClassificationLowered { .. } => Compatible,
        K::ColumnDescriptionChanged => Cosmetic,
        K::CheckAdded => Compatible,
        K::CheckRemoved => Breaking,
        K::CheckTightened { .. } => Compatible,
        K::CheckLoosened { .. } => Breaking,
        K::CheckChanged { .. } => Breaking,
        K::AdvisoryCheckChanged { .. } => Compatible,
        K::SloAdded => Compatible,
        K::SloRemoved => Breaking,
        K::SloTightened { .. } => Compatible,
        K::SloLoosened { .. } => Breaking,
        K::StatusChanged { to, .. } => match to.as_str() {
            "retired" => Breaking,
            _ => Compatible,
        },
        K::OutputDescriptionChanged
        | K::DescriptionChanged
        | K::TagsChanged { .. }
        | K::OwnerChanged { .. } => Cosmetic,
    }
}

/// Why a new version number is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionError {
    /// The version is lower than the deployed one.
    Backwards {
        deployed: semver::Version,
        new: semver::Version,
    },
    /// The contract breaks, but the version stays in the deployed caret range.
    NeedsMajor {
        deployed: semver::Version,
        new: semver::Version,
        next: semver::Version,
    },
}

impl std::fmt::Display for VersionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VersionError::Backwards { deployed, new } => {
                write!(
                    f,
                    "version {new} goes backwards from the deployed {deployed}"
                )
            }
            VersionError::NeedsMajor {
                deployed,
                new,
                next,
            } => write!(
                f,
                "the contract has breaking changes, but version {new} is compatible with the deployed {deployed} (^{deployed}); the next major is {next}"
            ),
        }
    }
}

/// Checks a new version number against the deployed one.
///
/// A version may not go backwards. A breaking change needs a version that
/// the old one's caret range (`^old`) does not accept: a new major, or a
/// new minor while the major is 0, as in Cargo.
pub fn version_gate(
    old: &semver::Version,
    new: &semver::Version,
    breaking: bool,
) -> Result<(), VersionError> {
    if new < old {
        return Err(VersionError::Backwards {
            deployed: old.clone(),
            new: new.clone(),
        });
    }
    if breaking {
        let compatible = semver::VersionReq::parse(&format!("^{old}"))
            .map(|req| req.matches(new))
            .unwrap_or(true);
        if compatible {
            let next = if old.major == 0 {
                semver::Version::new(0, old.minor + 1, 0)
            } else {
                semver::Version::new(old.major + 1, 0, 0)
            };
            return Err(VersionError::NeedsMajor {
                deployed: old.clone(),
                new: new.clone(),
                next,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> semver::Version {
        semver::Version::parse(s).unwrap_or_else(|_| semver::Version::new(0, 0, 0))
    }

    #[test]
    fn breaking_changes_need_a_new_major() {
        assert!(version_gate(&v("1.2.0"), &v("1.3.0"), false).is_ok());
        assert!(version_gate(&v("1.2.0"), &v("1.3.0"), true).is_err());
        assert!(version_gate(&v("1.2.0"), &v("2.0.0"), true).is_ok());
        assert!(version_gate(&v("0.2.0"), &v("0.3.0"), true).is_ok());
        assert!(version_gate(&v("0.2.0"), &v("0.2.5"), true).is_err());
        assert!(version_gate(&v("1.2.0"), &v("1.1.9"), false).is_err());
        assert!(version_gate(&v("1.2.0"), &v("1.2.0"), false).is_ok());
    }
}
