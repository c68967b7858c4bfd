//! A product's way in and out of the catalog: `mesh init`, `demo`,
//! `validate`, `plan`, `deploy`, `retire` and `deprecate`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use mesh_service::Mesh;

use crate::Format;
use crate::output::{Progress, print_diagnostics, print_plan};
use crate::runs::print_runs;

#[derive(Args)]
pub struct InitArgs {
    dir: PathBuf,
    /// The catalog's URL (default: SQLite under .mesh/), for
    /// example `sqlite://state/catalog.db`.
    #[arg(long)]
    catalog: Option<String>,
    /// Where tables live (default: .mesh/tables), a path or a
    /// `file:///…` URL.
    #[arg(long)]
    storage: Option<String>,
}

#[derive(Args)]
pub struct DemoArgs {
    dir: PathBuf,
    /// Number of orders to generate (other tables scale with it).
    #[arg(long, default_value_t = 10_000)]
    rows: usize,
}

#[derive(Args)]
pub struct CheckArgs {
    /// A project directory (default: --project or the current directory).
    pub path: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Args)]
pub struct DeployArgs {
    /// A project directory (default: --project or the current directory).
    pub path: Option<PathBuf>,
    /// Deploy breaking changes without a major version bump; the
    /// override is recorded in the catalog with who and when.
    #[arg(long)]
    allow_breaking: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Args)]
pub struct DeprecateArgs {
    product: String,
    /// The date it will be retired (YYYY-MM-DD), shown to its readers.
    #[arg(long)]
    sunset: Option<chrono::NaiveDate>,
}

/// `mesh init`: a new project whose first principal is `me`.
pub async fn init(args: InitArgs, me: &str) -> anyhow::Result<()> {
    let backends = mesh_service::init::Backends {
        catalog: args.catalog,
        storage: args.storage,
    };
    mesh_service::init::init_with(&args.dir, &backends)?;
    Mesh::open(&args.dir).await?.bootstrap_admin(me).await?;
    let dir = args.dir.display();
    println!("Created a mesh project in {dir}");
    println!("`{me}` is its first principal, with role mesh-admin (policies in policies/)");
    println!("Next: cd {dir} && mesh validate && mesh deploy && mesh run");
    Ok(())
}

/// `mesh demo`: generates, deploys and runs the demo mesh as `me`.
pub async fn demo(args: DemoArgs, me: &str) -> anyhow::Result<ExitCode> {
    let DemoArgs { dir, rows } = args;
    mesh_service::demo::generate(&dir, rows)?;
    eprintln!(
        "Generated the demo mesh in {} ({rows} orders)",
        dir.display()
    );
    let mesh = Mesh::open(&dir).await?;
    mesh.bootstrap_admin(me).await?;
    let (outcome, diagnostics) = mesh.deploy(me, false).await?;
    print_diagnostics(&diagnostics);
    eprintln!(
        "Deployed {} products",
        outcome.created.len() + outcome.updated.len() + outcome.unchanged.len()
    );
    let progress = Progress::new();
    let (runs, _) = mesh
        .run(&[], &mesh_service::RunOptions::default(), &progress)
        .await?;
    progress.done();
    print_runs(&runs, false, true)?;
    let ok = runs
        .iter()
        .all(|r| r.status == mesh_service::RunStatus::Succeeded);
    println!(
        "\nTry next:\n  cd {}\n  mesh catalog list\n  mesh catalog search revenue\n  mesh catalog show sales/revenue_by_customer\n  mesh query \"SELECT country, sum(revenue) AS revenue FROM sales.revenue_by_customer GROUP BY country ORDER BY revenue DESC\"\n  mesh query \"SELECT * FROM information_schema.tables WHERE table_catalog = 'mesh'\"\n  mesh runs\n  mesh catalog show sales/orders --usage      # who reads which column\n  mesh catalog history sales/orders          # releases and their data versions\n  mesh contract export sales/orders --format odcs\n  (edit sales/orders/product.yaml, then) mesh plan",
        dir.display()
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `mesh validate`: exits 1 when any descriptor has an error.
pub async fn validate(mesh: &Mesh, args: CheckArgs) -> anyhow::Result<ExitCode> {
    let (products, diagnostics) = mesh.validate().await?;
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    if args.format == Format::Json {
        let json: Vec<_> = diagnostics.iter().map(|d| d.to_json()).collect();
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print_diagnostics(&diagnostics);
        if errors == 0 {
            println!("{} products valid", products.len());
        }
    }
    if errors > 0 {
        eprintln!("error: {errors} problem(s) found");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `mesh plan`: exits 1 when `mesh deploy` would refuse.
pub async fn plan(mesh: &Mesh, args: CheckArgs) -> anyhow::Result<ExitCode> {
    let (plans, diagnostics) = mesh.plan().await?;
    print_diagnostics(&diagnostics);
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&plans)?);
    } else {
        print_plan(&plans);
    }
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    if errors > 0 {
        eprintln!(
            "error: {errors} problem(s) found; `mesh deploy` will refuse until they are fixed"
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `mesh deploy` as `me`.
pub async fn deploy(mesh: &Mesh, args: DeployArgs, me: &str) -> anyhow::Result<()> {
    let (outcome, diagnostics) = mesh.deploy(me, args.allow_breaking).await?;
    print_diagnostics(&diagnostics);
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else if outcome.deployment.is_none() {
        println!(
            "Nothing to deploy: {} products unchanged",
            outcome.unchanged.len()
        );
    } else {
        for p in &outcome.created {
            println!("created   {p}");
        }
        for p in &outcome.updated {
            println!("updated   {p}");
        }
        for p in &outcome.overridden {
            println!("override  {p}: breaking changes deployed with --allow-breaking (recorded)");
        }
        println!("{} unchanged", outcome.unchanged.len());
    }
    Ok(())
}

/// `mesh retire` as `me`.
pub async fn retire(mesh: &Mesh, product: &str, me: &str) -> anyhow::Result<()> {
    let r = mesh.retire(product, me).await?;
    println!("retired   {r}");
    Ok(())
}

/// `mesh deprecate` as `me`.
pub async fn deprecate(mesh: &Mesh, args: DeprecateArgs, me: &str) -> anyhow::Result<()> {
    let r = mesh.deprecate(&args.product, args.sunset, me).await?;
    match args.sunset {
        Some(d) => println!("deprecated {r} (sunset {d})"),
        None => println!("deprecated {r}"),
    }
    Ok(())
}
