//! `mesh principal`, `mesh team`, `mesh token`, `mesh policy`, `mesh audit`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use mesh_service::Mesh;
use mesh_service::identity::{parse_since, parse_ttl};

use crate::Format;
use crate::output::table;

#[derive(Subcommand)]
pub enum PrincipalCommand {
    /// Add a user or service account (a mesh-admin may; the first one is free).
    Add {
        name: String,
        /// `user` or `service`.
        #[arg(long, default_value = "user")]
        kind: String,
        /// A team to join (repeatable).
        #[arg(long = "team")]
        teams: Vec<String>,
        /// A global role, e.g. mesh-admin or pii-reader (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Every principal with its teams and roles.
    List {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Subcommand)]
pub enum TeamCommand {
    /// Add a team owning domains.
    Add {
        name: String,
        /// A domain the team owns (repeatable).
        #[arg(long = "owns")]
        domains: Vec<String>,
        /// A member (repeatable).
        #[arg(long = "member")]
        members: Vec<String>,
    },
    /// Every team with its members and domains.
    List {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an API token; it is printed once and stored only as a hash.
    Create {
        /// Whose token (default: yourself).
        #[arg(long)]
        principal: Option<String>,
        /// Lifetime, e.g. 30d, 12h (default: no expiry).
        #[arg(long)]
        expires: Option<String>,
    },
    /// Revoke a token by its id (the part after `mesh_`).
    Revoke { id: String },
    /// Tokens (ids, owners, dates; never the secret).
    List {
        #[arg(long)]
        principal: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Load every policy (a syntax error fails with file:line:col) and run
    /// their `test_` rules.
    Test {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Evaluate a query against the global policies, for debugging.
    Eval {
        /// The input document, as JSON text or `@FILE`.
        #[arg(long)]
        input: String,
        /// What to evaluate.
        #[arg(long, default_value = "data.mesh.access")]
        query: String,
    },
}

fn json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub async fn principal(mesh: &Mesh, cmd: PrincipalCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PrincipalCommand::Add {
            name,
            kind,
            teams,
            roles,
        } => {
            let p = mesh
                .add_principal(&crate::caller(), &name, &kind, &teams, &roles)
                .await?;
            println!("added     {} ({})", p.name, p.kind);
        }
        PrincipalCommand::List { format } => {
            let list = mesh.principals().await?;
            if format == Format::Json {
                json(&list)?;
            } else {
                let rows = list
                    .iter()
                    .map(|p| {
                        vec![
                            p.name.clone(),
                            p.kind.clone(),
                            p.teams.join(", "),
                            p.roles.join(", "),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(
                        vec![
                            "principal".into(),
                            "kind".into(),
                            "teams".into(),
                            "roles".into()
                        ],
                        rows
                    )
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn team(mesh: &Mesh, cmd: TeamCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TeamCommand::Add {
            name,
            domains,
            members,
        } => {
            mesh.add_team(&crate::caller(), &name, &domains, &members)
                .await?;
            println!("added     team {name}");
        }
        TeamCommand::List { format } => {
            let list = mesh.teams().await?;
            if format == Format::Json {
                json(&list)?;
            } else {
                let rows = list
                    .iter()
                    .map(|t| vec![t.name.clone(), t.domains.join(", "), t.members.join(", ")])
                    .collect();
                println!(
                    "{}",
                    table(vec!["team".into(), "owns".into(), "members".into()], rows)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn token(mesh: &Mesh, cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    let me = crate::caller();
    match cmd {
        TokenCommand::Create { principal, expires } => {
            let ttl = match &expires {
                Some(e) => Some(parse_ttl(e).ok_or_else(|| {
                    anyhow::anyhow!("--expires `{e}` is not a duration such as 30d, 12h or 2w")
                })?),
                None => None,
            };
            let who = principal.unwrap_or_else(|| me.name.clone());
            let (record, text) = mesh.create_token(&me, &who, ttl).await?;
            // The only time the token is shown; it goes to stdout alone so
            // it can be captured, the rest to stderr.
            println!("{text}");
            eprintln!(
                "token {} for {}{}; store it now, it cannot be shown again",
                record.id,
                record.principal,
                record
                    .expires_at
                    .map(|e| format!(", expires {}", e.to_rfc3339()))
                    .unwrap_or_default()
            );
        }
        TokenCommand::Revoke { id } => {
            mesh.revoke_token(&me, &id).await?;
            println!("revoked   token {id}");
        }
        TokenCommand::List { principal, format } => {
            let list = mesh.tokens(principal.as_deref()).await?;
            if format == Format::Json {
                json(&list)?;
            } else {
                let date = |d: Option<chrono::DateTime<chrono::Utc>>| {
                    d.map(|d| d.to_rfc3339()).unwrap_or_default()
                };
                let rows = list
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.clone(),
                            t.principal.clone(),
                            t.created_at.to_rfc3339(),
                            date(t.expires_at),
                            date(t.revoked_at),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(
                        vec![
                            "id".into(),
                            "principal".into(),
                            "created".into(),
                            "expires".into(),
                            "revoked".into()
                        ],
                        rows
                    )
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn policy(mesh: &Mesh, cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    let set = mesh.policies()?;
    match cmd {
        PolicyCommand::Test { format } => {
            let outcomes = set.run_tests();
            let failed = outcomes.iter().filter(|t| !t.passed).count();
            if format == Format::Json {
                json(&outcomes)?;
            } else {
                for t in &outcomes {
                    match &t.detail {
                        None => println!("PASS  {}  ({})", t.name, t.file),
                        Some(d) => println!("FAIL  {}  ({}): {d}", t.name, t.file),
                    }
                }
                eprintln!(
                    "{} policy file(s), {} test(s), {failed} failed",
                    set.file_count(),
                    outcomes.len()
                );
            }
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        PolicyCommand::Eval { input, query } => {
            let text = match input.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("cannot read {path}: {e}"))?,
                None => input,
            };
            let doc: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("--input is not JSON: {e}"))?;
            match set.eval(&query, &doc)? {
                Some(v) => json(&v)?,
                None => println!("undefined"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

// What `mesh audit` shows (the command's help is its variant's doc).
#[derive(Args)]
pub struct AuditArgs {
    #[arg(long)]
    product: Option<String>,
    #[arg(long)]
    principal: Option<String>,
    /// Only this action: query, deploy, policy.change, token.create, access.approve, …
    #[arg(long)]
    action: Option<String>,
    /// YYYY-MM-DD or an RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// The newest entries to show.
    #[arg(long, default_value_t = 100)]
    limit: i64,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

pub async fn audit(mesh: &Mesh, args: AuditArgs) -> anyhow::Result<ExitCode> {
    let AuditArgs {
        product,
        principal,
        action,
        since,
        limit,
        format,
    } = args;
    let since = match &since {
        Some(s) => Some(parse_since(s).ok_or_else(|| {
            anyhow::anyhow!("--since `{s}` is not a date (YYYY-MM-DD) or an RFC 3339 time")
        })?),
        None => None,
    };
    let entries = mesh
        .audit(&mesh_service::AuditFilter {
            product,
            principal,
            since,
            action,
            limit: Some(limit),
            ..Default::default()
        })
        .await?;
    if format == Format::Json {
        json(&entries)?;
    } else {
        let rows = entries
            .iter()
            .map(|e| {
                vec![
                    e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    e.principal.clone(),
                    e.action.clone(),
                    e.product.clone().unwrap_or_default(),
                    e.columns.join(", "),
                    e.decision.clone(),
                    e.reason.clone(),
                ]
            })
            .collect();
        println!(
            "{}",
            table(
                [
                    "when",
                    "principal",
                    "action",
                    "product",
                    "columns",
                    "decision",
                    "reason"
                ]
                .map(String::from)
                .to_vec(),
                rows
            )
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum AccessCommand {
    /// Ask the owners of a product for access.
    Request {
        product: String,
        /// Why you need it; the owners see it and it is audited.
        #[arg(long)]
        purpose: String,
        /// How long, e.g. 30d (capped by the product's `access.max_grant`).
        #[arg(long, default_value = "30d")]
        duration: String,
        /// Ask to see personal (`pii`) columns unmasked.
        #[arg(long)]
        pii: bool,
    },
    /// Your inbox: requests you may decide, and your own requests.
    List {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Approve a pending request; the grant is in force from the next query.
    Approve {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deny a pending request.
    Deny {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// End a grant before it expires.
    Revoke { grant: String },
    /// Your grants (`--all`: everyone's, for a mesh-admin).
    Grants {
        #[arg(long)]
        all: bool,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

pub async fn access(mesh: &Mesh, cmd: AccessCommand) -> anyhow::Result<ExitCode> {
    let me = crate::caller();
    match cmd {
        AccessCommand::Request {
            product,
            purpose,
            duration,
            pii,
        } => {
            let d = parse_ttl(&duration).ok_or_else(|| {
                anyhow::anyhow!("--duration `{duration}` is not a duration such as 30d, 12h or 2w")
            })?;
            let r = mesh.access_request(&me, &product, &purpose, d, pii).await?;
            println!("requested {} ({})", r.product, r.id);
            eprintln!(
                "the owners of {} decide it with `mesh access approve {}`",
                r.product, r.id
            );
        }
        AccessCommand::List { format } => {
            let list = mesh.access_list(&me).await?;
            if format == Format::Json {
                json(&list)?;
            } else {
                let rows = list
                    .iter()
                    .map(|i| {
                        let r = &i.request;
                        vec![
                            r.id.clone(),
                            r.product.clone(),
                            r.principal.clone(),
                            r.purpose.clone(),
                            format!(
                                "{}d{}",
                                r.duration_secs / 86_400,
                                if r.pii { ", pii" } else { "" }
                            ),
                            r.status.clone(),
                            if i.can_decide {
                                "you decide".into()
                            } else {
                                String::new()
                            },
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(
                        [
                            "id",
                            "product",
                            "requester",
                            "purpose",
                            "asked",
                            "status",
                            ""
                        ]
                        .map(String::from)
                        .to_vec(),
                        rows
                    )
                );
            }
        }
        AccessCommand::Approve { id, reason } => {
            let g = mesh
                .access_decide(&me, &id, true, reason.as_deref())
                .await?;
            if let Some(g) = g {
                println!(
                    "approved  {id}: grant {} for {} on {} until {}",
                    g.id,
                    g.principal,
                    g.product,
                    g.expires_at.to_rfc3339()
                );
            }
        }
        AccessCommand::Deny { id, reason } => {
            mesh.access_decide(&me, &id, false, reason.as_deref())
                .await?;
            println!("denied    {id}");
        }
        AccessCommand::Revoke { grant } => {
            let g = mesh.access_revoke(&me, &grant).await?;
            println!(
                "revoked   grant {} of {} on {}",
                g.id, g.principal, g.product
            );
        }
        AccessCommand::Grants { all, format } => {
            let list = mesh.access_grants(&me, all).await?;
            if format == Format::Json {
                json(&list)?;
            } else {
                let now = chrono::Utc::now();
                let rows = list
                    .iter()
                    .map(|g| {
                        vec![
                            g.id.clone(),
                            g.product.clone(),
                            g.principal.clone(),
                            g.purpose.clone(),
                            g.expires_at.to_rfc3339(),
                            if g.is_live(now) {
                                "in force"
                            } else if g.revoked_at.is_some() {
                                "revoked"
                            } else {
                                "expired"
                            }
                            .into(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(
                        [
                            "grant",
                            "product",
                            "principal",
                            "purpose",
                            "expires",
                            "state"
                        ]
                        .map(String::from)
                        .to_vec(),
                        rows
                    )
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
