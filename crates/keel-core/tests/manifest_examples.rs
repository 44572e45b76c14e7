//! Every shipped manifest parses and validates, and the model reads as the files say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use keel_core::manifest::{self, LoadedManifest};

fn examples_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples"))
}

fn load(name: &str) -> LoadedManifest {
    let path = examples_dir().join(name);
    match manifest::load_file(&path) {
        Ok(loaded) => loaded,
        Err(errors) => panic!("{name} is invalid:\n{errors}"),
    }
}

#[test]
fn every_example_manifest_is_valid() {
    let mut names: Vec<String> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["ameide.toml", "builder.toml", "demo.toml", "iama.toml", "kalei.toml", "suiftly.toml"]
    );
    for name in &names {
        let loaded = load(name);
        assert!(loaded.source.ends_with(name.as_str()), "{}", loaded.source);
    }
}
