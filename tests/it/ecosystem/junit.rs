//! `audit --format junit` is accepted by CI systems: it validates against the
//! JUnit XML schema (tests/fixtures/junit.xsd) with xmllint, and its counts
//! agree with its test cases. Needs xmllint (Debian libxml2-utils, installed
//! by .ci/run); a missing xmllint fails the test, it is never skipped.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn xmllint(args: &[&str]) -> std::process::Output {
    Command::new("xmllint")
        .args(args)
        .output()
        .expect("xmllint is needed for this test (Debian libxml2-utils, see .ci/run)")
}

fn validate(report: &Path) -> Result<(), String> {
    let xsd = fixture("junit.xsd");
    let out = xmllint(&[
        "--noout",
        "--schema",
        &xsd.to_string_lossy(),
        &report.to_string_lossy(),
    ]);
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// An XPath number from the report.
fn xpath_number(report: &Path, expr: &str) -> f64 {
    let out = xmllint(&["--xpath", expr, &report.to_string_lossy()]);
    assert!(out.status.success(), "xmllint --xpath {expr} failed");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{expr}: {text}"))
}

#[test]
fn fixture_is_a_snapshot_of_the_current_schema() {
    let text = std::fs::read_to_string(fixture("ecosystem-host.json")).unwrap();
    let snap: rstaudit::host::Snapshot =
        serde_json::from_str(&text).expect("tests/fixtures/ecosystem-host.json is a Snapshot");
    assert_eq!(snap.schema, rstaudit::host::SCHEMA_VERSION);
}

#[test]
fn schema_rejects_a_report_without_counts() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.xml");
    std::fs::write(
        &good,
        r#"<testsuites><testsuite name="host" tests="1" failures="1" errors="0" skipped="0">
<testcase name="r" classname="rstaudit.host"><failure message="m" type="high">t</failure></testcase>
</testsuite></testsuites>"#,
    )
    .unwrap();
    validate(&good).expect("a minimal report is valid");
    let bad = dir.path().join("bad.xml");
    std::fs::write(
        &bad,
        r#"<testsuites><testsuite name="host" failures="one">
<testcase classname="x"/></testsuite></testsuites>"#,
    )
    .unwrap();
    let err = validate(&bad).expect_err("a report without counts is invalid");
    assert!(err.contains("'tests' is required"), "{err}");
    assert!(err.contains("'name' is required"), "{err}");
}

#[test]
fn junit_report_validates_against_the_junit_schema() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("rstaudit.xml");
    let out = common::rstaudit()
        .args(["audit", "--snapshot"])
        .arg(fixture("ecosystem-host.json"))
        .args(["--format", "junit", "--fail-on", "high", "-o"])
        .arg(&report)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the fixture has high findings: {stderr}"
    );
    if let Err(e) = validate(&report) {
        panic!(
            "{e}\n{}",
            std::fs::read_to_string(&report).unwrap_or_default()
        );
    }
    // The counts CI systems show must agree with the test cases.
    let cases = xpath_number(&report, "count(//testcase)");
    let failures = xpath_number(&report, "count(//testcase[failure])");
    let skipped = xpath_number(&report, "count(//testcase[skipped])");
    let errors = xpath_number(&report, "count(//testcase[error])");
    assert!(failures >= 1.0, "findings are failures");
    assert!(cases > failures, "rules that passed are test cases too");
    assert_eq!(
        xpath_number(&report, "sum(/testsuites/testsuite/@tests)"),
        cases
    );
    assert_eq!(
        xpath_number(&report, "sum(/testsuites/testsuite/@failures)"),
        failures
    );
    assert_eq!(
        xpath_number(&report, "sum(/testsuites/testsuite/@errors)"),
        errors
    );
    if xpath_number(&report, "count(/testsuites/testsuite[@skipped])") > 0.0 {
        assert_eq!(
            xpath_number(&report, "sum(/testsuites/testsuite/@skipped)"),
            skipped
        );
    }
}
