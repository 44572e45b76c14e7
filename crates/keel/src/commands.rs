//! The subcommands. Errors are printed as one plain line each on stderr.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use keel_core::manifest::{self, LoadedManifest};
use keel_server::config::Layers;
use keel_server::{Application, Settings, StartError};
use keel_store::ConnectOptions;

use crate::cli::GlobalArgs;

pub(crate) const EXIT_RUNTIME: u8 = 1;
pub(crate) const EXIT_CONFIG: u8 = 2;

/// `keel check FILE`.
#[allow(clippy::print_stdout)] // printing the summary is this command's whole job
pub fn check(path: &Path) -> ExitCode {
    match manifest::load_file(path) {
        Ok(loaded) => {
            println!("{}: ok", path.display());
            println!("{}", loaded.manifest.summary());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{}: {} error(s)", path.display(), errors.0.len());
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// `keel serve`.
pub fn serve(global: &GlobalArgs) -> ExitCode {
    let (settings, loaded) = match resolve(global) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let _telemetry = keel_server::telemetry::init_logging(
        settings.log_format,
        settings.otlp_endpoint.as_deref(),
    );
    let Some(runtime) = runtime() else {
        return ExitCode::from(EXIT_RUNTIME);
    };
    runtime.block_on(async move {
        let source = loaded.source.clone();
        let app = match Application::build(settings.clone(), loaded).await {
            Ok(app) => app,
            Err(e) => return fail_start(&e),
        };
        tracing::info!(
            addr = %settings.addr,
            metrics_addr = %settings.metrics_addr,
            port = app.port(),
            manifest = %source,
            backend = ?app.state().store().backend(),
            version = env!("CARGO_PKG_VERSION"),
            "keel serving"
        );
        match app.run_until_stopped(keel_server::shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("keel: server error: {e}");
                ExitCode::from(EXIT_RUNTIME)
            }
        }
    })
}

/// `keel migrate`.
#[allow(clippy::print_stdout)] // reporting the schema version is this command's job
pub fn migrate(global: &GlobalArgs) -> ExitCode {
    let (settings, _) = match resolve(global) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let Some(runtime) = runtime() else {
        return ExitCode::from(EXIT_RUNTIME);
    };
    runtime.block_on(async move {
        let store = match keel_store::connect(&connect_options(&settings)).await {
            Ok(s) => s,
            Err(e) => return fail_start(&StartError::Store(e)),
        };
        let result = store.schema_status().await;
        store.close().await;
        match result {
            Ok(status) => {
                println!(
                    "{:?} schema at version {} (this Keel: {})",
                    store.backend(),
                    status.applied,
                    status.expected
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("keel: {e}");
                ExitCode::from(EXIT_RUNTIME)
            }
        }
    })
}

/// Resolves settings, connects the store, runs `f` with it, and closes it.
pub(crate) fn connect_store<F, Fut>(global: &GlobalArgs, f: F) -> ExitCode
where
    F: FnOnce(keel_store::DynStore) -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    let (settings, _) = match resolve(global) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let Some(runtime) = runtime() else {
        return ExitCode::from(EXIT_RUNTIME);
    };
    runtime.block_on(async move {
        let store = match keel_store::connect(&connect_options(&settings)).await {
            Ok(s) => s,
            Err(e) => return fail_start(&StartError::Store(e)),
        };
        let code = f(store.clone()).await;
        store.close().await;
        code
    })
}

/// As [`connect_store`], also handing `f` the manifest.
pub(crate) fn connect_with_manifest<F, Fut>(global: &GlobalArgs, f: F) -> ExitCode
where
    F: FnOnce(keel_store::DynStore, keel_core::manifest::Manifest) -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    let (settings, loaded) = match resolve(global) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let Some(runtime) = runtime() else {
        return ExitCode::from(EXIT_RUNTIME);
    };
    runtime.block_on(async move {
        let store = match keel_store::connect(&connect_options(&settings)).await {
            Ok(s) => s,
            Err(e) => return fail_start(&StartError::Store(e)),
        };
        let code = f(store.clone(), loaded.manifest).await;
        store.close().await;
        code
    })
}

fn connect_options(s: &Settings) -> ConnectOptions {
    ConnectOptions {
        database_url: s.database_url.clone(),
        data_dir: s.data_dir.clone(),
        connect_timeout: s.connect_timeout,
        max_connections: 2,
    }
}

fn fail_start(e: &StartError) -> ExitCode {
    eprintln!("keel: cannot start: {e}");
    ExitCode::from(EXIT_RUNTIME)
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("keel: cannot start the async runtime: {e}");
            None
        }
    }
}

/// Loads the manifest, then layers the settings over its `[server]` table.
fn resolve(global: &GlobalArgs) -> Result<(Settings, LoadedManifest), ExitCode> {
    let env: std::collections::BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("KEEL_"))
        .collect();
    let path = global
        .manifest
        .clone()
        .or_else(|| {
            env.get("KEEL_MANIFEST")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
        })
        .or_else(|| Some(PathBuf::from("keel.toml")).filter(|p| p.is_file()));
    let loaded = match &path {
        Some(p) => manifest::load_file(p),
        None => manifest::demo(),
    };
    let loaded = loaded.map_err(|errors| {
        eprintln!("{errors}");
        eprintln!(
            "keel: the manifest has {} error(s); not starting",
            errors.0.len()
        );
        ExitCode::from(EXIT_CONFIG)
    })?;
    let layers = Layers {
        file: loaded.server.clone(),
        env,
        flags: global.flags(),
    };
    let settings = Settings::resolve(&layers).map_err(|e| {
        eprintln!("keel: {e}");
        ExitCode::from(EXIT_CONFIG)
    })?;
    Ok((settings, loaded))
}
