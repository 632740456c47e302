//! The command surface: every command has help with an example.

use crate::common;

#[test]
fn the_command_list_of_the_tests_is_the_binarys() {
    let out = common::rstaudit().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let listed: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert_eq!(listed, common::COMMANDS, "{help}");
}

#[test]
fn every_command_help_has_an_example() {
    for &cmd in common::COMMANDS {
        let out = common::rstaudit().args([cmd, "--help"]).output().unwrap();
        assert!(out.status.success(), "{cmd} --help failed");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Example"),
            "{cmd} --help has no example:\n{text}"
        );
        assert!(
            text.contains("rstaudit "),
            "{cmd} --help example does not show rstaudit"
        );
    }
}

#[test]
fn bad_arguments_exit_2() {
    let out = common::rstaudit()
        .args(["audit", "--format", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn test_namespace_and_helper_work() {
    let ns = common::Netns::new("smoke");
    let helper = ns.helper(&["listen:7001:7", "connect:7001", "connect:7001", "sleep:100"]);
    let out = common::run(ns.command("ss").args(["-Htln", "sport", "= :7001"]));
    // ss prints Recv-Q (accept queue) 2 and Send-Q (backlog) 7 for the listener.
    let fields: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fields.get(1..3), Some(&["2", "7"][..]), "ss said: {out}");
    assert!(helper.pid > 1);
}
