#![allow(clippy::unwrap_used, clippy::expect_used)]
#[test]
fn debug_print() {
    for f in ["bad1", "bad2"] {
        let path = std::path::PathBuf::from(format!("/tmp/mf/{f}.toml"));
        match keel_core::manifest::load_file(&path) { Ok(m) => eprintln!("OK {}", m.manifest.summary()), Err(e) => eprintln!("{e}") }
    }
    eprintln!("{}", keel_core::manifest::demo().unwrap().manifest.summary());
}
