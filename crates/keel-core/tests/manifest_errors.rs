//! Every class of manifest error is reported with its exact line, column, key and message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keel_core::manifest::{self, ManifestError};

/// Lines 1-5 of most test manifests; test bodies start on line 6.
const HEAD: &str = "[product]\nname = \"p\"\ndefault_plan = \"free\"\n\n[plans.free]\n";

fn errors(src: &str) -> Vec<ManifestError> {
    match manifest::parse_str(src, "keel.toml") {
        Ok(_) => panic!("expected errors in:\n{src}"),
        Err(errors) => errors.0,
    }
}

/// Asserts exactly these errors, in order: (line, column, key, message fragment).
fn assert_errors(src: &str, expected: &[(usize, usize, &str, &str)]) {
    let found = errors(src);
    let shown: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(found.len(), expected.len(), "{shown:#?}");
    for (error, (line, column, key, fragment)) in found.iter().zip(expected) {
        assert_eq!(
            (error.line, error.column, error.key.as_str()),
            (*line, *column, *key),
            "{shown:#?}"
        );
        assert!(
            error.message.contains(fragment),
            "{:?} lacks {fragment:?}",
            error.message
        );
        assert_eq!(error.file, "keel.toml");
    }
}

#[test]
fn syntax_errors_are_all_reported_with_positions() {
    let src =
        format!("{HEAD}display_name = \"Free\nprice_micros = 12 34\n[meters.m]\nunit = \"u\"\n");
    assert_errors(
        &src,
        &[
            (6, 21, "", "invalid basic string, expected `\"`"),
            (7, 16, "", "string values must be quoted"),
        ],
    );
}

#[test]
fn unknown_keys_are_reported_at_every_depth() {
    let body = "colour = \"blue\"
[plans.free.limits.requests]
limit = 1
window = \"day\"
burst = 3
[meters.requests]
unit = \"request\"
[routes.r]
feature = \"f\"
[[routes.r.deployments]]
provider = \"sim\"
model = \"m\"
region = \"eu\"
[features.f]
[widgets.x]
";
    assert_errors(
        &format!("{HEAD}{body}"),
        &[
            (
                6,
                1,
                "plans.free.colour",
                "unknown field `colour`, expected one of",
            ),
            (
                10,
                1,
                "plans.free.limits.requests.burst",
                "unknown field `burst`",
            ),
            (
                18,
                1,
                "routes.r.deployments[0].region",
                "unknown field `region`",
            ),
            (
                20,
                2,
                "widgets",
                "unknown table `widgets`: expected one of server, product",
            ),
        ],
    );
}

#[test]
fn wrong_types_are_reported_at_the_value() {
    let body = "price_micros = \"free\"\nfeatures = \"chat\"\n[meters.m]\nunit = 5\n";
    assert_errors(
        &format!("{HEAD}{body}"),
        &[
            (
                6,
                16,
                "plans.free.price_micros",
                "invalid type: string \"free\", expected i64",
            ),
            (
                7,
                12,
                "plans.free.features",
                "invalid type: string \"chat\", expected a sequence",
            ),
            (
                9,
                8,
                "meters.m.unit",
                "invalid type: integer `5`, expected a string",
            ),
        ],
    );
}

#[test]
fn entries_that_are_not_tables_are_reported() {
    let src = "[product]\nname = \"p\"\ndefault_plan = \"free\"\n\n[plans]\nfree = 3\n[meters]\nrequests = \"count\"\n";
    assert_errors(
        src,
        &[
            (6, 8, "plans.free", "expected a table, found integer"),
            (8, 12, "meters.requests", "expected a table, found string"),
        ],
    );
}

#[test]
fn missing_required_fields_point_at_their_table() {
    let body = "[plans.free.limits.requests]
limit = 5
[meters.requests]
aggregation = \"count\"
[routes.r]
feature = \"f\"
[[routes.r.deployments]]
model = \"m\"
[features.f]
";
    assert_errors(
        &format!("{HEAD}{body}"),
        &[
            (
                6,
                1,
                "plans.free.limits.requests.window",
                "missing field `window`",
            ),
            (8, 1, "meters.requests.unit", "missing field `unit`"),
            (
                12,
                1,
                "routes.r.deployments[0].provider",
                "missing field `provider`",
            ),
        ],
    );
}

#[test]
fn a_missing_product_table_is_reported() {
    assert_errors(
        "[plans.free]\n",
        &[(1, 1, "product", "missing [product] table")],
    );
}

#[test]
fn entry_names_must_be_slugs() {
    assert_errors(
        &format!("{HEAD}[features.Chat]\n"),
        &[(
            6,
            11,
            "features.Chat",
            "invalid name `Chat`: use lowercase letters",
        )],
    );
}

#[test]
fn three_errors_in_three_sections_are_all_reported() {
    let src = "[product]
name = \"p\"
default_plan = \"free\"

[plans.free]
features = [\"chat\"]

[meters.requests]
unit = \"request\"
aggregation = \"average\"

[features.chat]

[routes.chat]
feature = \"chat\"
[[routes.chat.deployments]]
provider = \"sim\"
model = \"sim-small\"
weight = 0

[safety.crisis]
keywords = [\"x\"]
patterns = [\"[a-\"]
action = \"flag\"
";
    assert_errors(
        src,
        &[
            (
                10,
                15,
                "meters.requests.aggregation",
                "unknown variant `average`, expected `count` or `sum`",
            ),
            (
                19,
                10,
                "routes.chat.deployments[0].weight",
                "must be greater than 0, found 0",
            ),
            (
                23,
                13,
                "safety.crisis.patterns[0]",
                "invalid regex: unclosed character class",
            ),
        ],
    );
    let shown = manifest::parse_str(src, "keel.toml")
        .unwrap_err()
        .to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("keel.toml:10:15: meters.requests.aggregation: unknown variant"));
    assert_eq!(
        lines[1],
        "keel.toml:19:10: routes.chat.deployments[0].weight: must be greater than 0, found 0"
    );
}

#[test]
fn an_unreadable_file_is_one_error_at_line_zero() {
    let path = std::path::Path::new("/nonexistent/keel.toml");
    let errors = manifest::load_file(path).unwrap_err();
    assert_eq!(errors.len(), 1);
    let error = &errors.0[0];
    assert_eq!((error.line, error.column, error.key.as_str()), (0, 0, ""));
    assert_eq!(error.file, "/nonexistent/keel.toml");
    assert!(
        error.message.starts_with("cannot read manifest: "),
        "{}",
        error.message
    );
}
