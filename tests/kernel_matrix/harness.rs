//! Boot one of Debian's kernels in qemu with a throwaway initramfs and collect what the steps
//! of init.sh printed.
//!
//! The kernel package is fetched with `apt-get download` and unpacked with `dpkg -x` into
//! target/kernel-matrix/cache (nothing is installed on the host; reruns reuse the cache). The
//! initramfs holds busybox, the rstaudit binary under test and the sockhelper example
//! (stripped), `ip` and `nft` with their shared libraries, and the kernel's own netfilter,
//! IPv4/IPv6, veth and diag modules (decompressed, with a modules.dep from depmod).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A kernel package unpacked in the cache.
pub struct Kernel {
    /// `uname -r` of the kernel (the directory under lib/modules).
    pub release: String,
    pub vmlinuz: PathBuf,
    pub tree: PathBuf,
}

/// What one step of init.sh printed.
#[derive(Debug, Default, Clone)]
pub struct Step {
    pub stdout: String,
    pub stderr: String,
    pub rc: Option<i32>,
}

/// One boot: the steps, and where its logs are kept.
pub struct Boot {
    pub steps: BTreeMap<String, Step>,
    pub done: bool,
    pub accel: &'static str,
    pub console: PathBuf,
    pub data: PathBuf,
    pub seconds: f64,
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| {
        panic!("{cmd:?}: {e} (the kernel matrix needs it: see docs/kernels.md)")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Natural order: "6.1.0-9" < "6.1.0-57", "6.12.9+deb12" < "6.12.117+deb12".
fn natural_key(s: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut digits = String::new();
    let mut text = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !text.is_empty() {
                out.push((u64::MAX, std::mem::take(&mut text)));
            }
            digits.push(c);
        } else {
            if !digits.is_empty() {
                out.push((digits.parse().unwrap_or(u64::MAX), String::new()));
                digits.clear();
            }
            text.push(c);
        }
    }
    if !digits.is_empty() {
        out.push((digits.parse().unwrap_or(u64::MAX), String::new()));
    }
    if !text.is_empty() {
        out.push((u64::MAX, text));
    }
    out
}

/// Kernel series of Debian releases whose packages the machine's own apt lists do not hold:
/// their suite is read with an apt configuration of the test's own (lists and cache in the
/// test's directory, a sources entry for that suite alone on the URI of the machine's Debian
/// entry). The machine's apt setup is never changed.
const OTHER_SUITES: [(&str, &str); 1] = [("5.10", "bullseye")];

/// How apt is run for one kernel: the machine's configuration, or a suite of the test's own.
#[derive(Debug, Clone, Default)]
pub struct Apt {
    /// `-o` options for apt-get and apt-cache (empty: the machine's own setup).
    opts: Vec<String>,
}

impl Apt {
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        for o in &self.opts {
            c.args(["-o", o]);
        }
        c
    }
}

/// The URI and keyring of the machine's Debian entry (deb822 `.sources` files, then
/// sources.list): the first entry for the machine's own release, not its security suite.
fn machine_debian_entry() -> (String, String) {
    let codename = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("VERSION_CODENAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "bookworm".into());
    let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg".to_string();
    let mut texts: Vec<(bool, String)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = dir.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if p.extension().is_some_and(|e| e == "sources") {
                texts.push((true, std::fs::read_to_string(&p).unwrap_or_default()));
            }
        }
    }
    texts.push((
        false,
        std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default(),
    ));
    for (deb822, text) in texts {
        if deb822 {
            for stanza in text.split("\n\n") {
                let field = |name: &str| {
                    stanza.lines().find_map(|l| {
                        l.strip_prefix(name)
                            .and_then(|r| r.strip_prefix(':'))
                            .map(|v| v.trim().to_string())
                    })
                };
                let (Some(uris), Some(suites)) = (field("URIs"), field("Suites")) else {
                    continue;
                };
                if suites.split_whitespace().any(|s| s == codename) {
                    let uri = uris
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    return (uri, field("Signed-By").unwrap_or(keyring));
                }
            }
        } else {
            for l in text.lines() {
                let words: Vec<&str> = l
                    .split_whitespace()
                    .filter(|w| !w.starts_with('['))
                    .collect();
                if words.first() == Some(&"deb") && words.get(2) == Some(&codename.as_str()) {
                    return (words[1].to_string(), keyring);
                }
            }
        }
    }
    panic!(
        "no Debian entry for {codename} in the machine's apt sources: the kernel matrix fetches older kernels from the same archive"
    );
}

/// The apt configuration for kernels of `series` (the machine's own, or that of its suite
/// under `base`, its lists refreshed when older than a day).
pub fn apt_for(series: &str, base: &Path) -> Apt {
    let Some((_, suite)) = OTHER_SUITES.iter().find(|(s, _)| *s == series) else {
        return Apt::default();
    };
    let dir = base.join("apt").join(suite);
    for d in ["lists/partial", "cache/archives/partial", "etc"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let (uri, keyring) = machine_debian_entry();
    let list = dir.join("etc/sources.list");
    std::fs::write(
        &list,
        format!("deb [signed-by={keyring}] {uri} {suite} main\n"),
    )
    .unwrap();
    let apt = Apt {
        opts: vec![
            format!("Dir::Etc::SourceList={}", list.display()),
            "Dir::Etc::SourceParts=/nonexistent".into(),
            format!("Dir::State::Lists={}", dir.join("lists").display()),
            format!("Dir::Cache={}", dir.join("cache").display()),
            // apt's download sandbox user cannot write into the test's own directories.
            "APT::Sandbox::User=root".into(),
        ],
    };
    let stamp = dir.join("updated");
    let fresh = std::fs::metadata(&stamp)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|e| e < Duration::from_secs(86_400)));
    if !fresh {
        run(apt.command("apt-get").args(["update", "-qq"]));
        std::fs::write(&stamp, "").unwrap();
    }
    apt
}

/// The series of a kernel name: `5.10` for `5.10` or `linux-image-5.10.0-32-cloud-amd64`.
pub fn series_of(name: &str) -> String {
    let bare = name.strip_prefix("linux-image-").unwrap_or(name);
    bare.split(['.', '-', '+'])
        .take(2)
        .collect::<Vec<_>>()
        .join(".")
}

/// The newest signed `-cloud-amd64` image package of a Debian kernel series ("6.1", "6.12"),
/// or `name` itself when it already is a package name (`linux-image-6.1.0-57-cloud-amd64`).
pub fn resolve(name: &str, apt: &Apt) -> String {
    if name.starts_with("linux-image-") {
        return name.to_string();
    }
    assert!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_digit() || c == '.'),
        "kernel {name:?}: give a Debian kernel series such as 6.1 or 6.12, or a package name"
    );
    let pattern = format!(
        "^linux-image-{}[.-].*cloud-amd64$",
        name.replace('.', "\\.")
    );
    let listed = run(apt
        .command("apt-cache")
        .args(["search", "--names-only", &pattern]));
    let prefix = format!("linux-image-{name}");
    let mut names: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.ends_with("-cloud-amd64"))
        .filter(|n| {
            // 6.1 -> 6.1.0-57-...; 6.12 -> 6.12.117+deb12-...; not 6.12 for 6.1, and not the
            // meta package linux-image-6.12-cloud-amd64, which holds no kernel.
            n.strip_prefix(prefix.as_str()).is_some_and(|rest| {
                rest.starts_with('.')
                    || rest
                        .strip_prefix('-')
                        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
            })
        })
        .collect();
    names.sort_by_key(|n| natural_key(n));
    names.last().map(|n| n.to_string()).unwrap_or_else(|| {
        panic!(
            "no linux-image-{name}*-cloud-amd64 package in the apt lists: run `apt-get update` \
             (./test.sh does), or give a package name from `apt-cache search linux-image-{name}`"
        )
    })
}

/// Download and unpack `package` into `cache` (once).
pub fn fetch(cache: &Path, package: &str, apt: &Apt) -> Kernel {
    let tree = cache.join(package);
    let stamp = tree.join(".unpacked");
    if !stamp.exists() {
        std::fs::create_dir_all(cache).unwrap();
        let debs = |dir: &Path| -> Vec<PathBuf> {
            std::fs::read_dir(dir)
                .unwrap()
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                        n.starts_with(&format!("{package}_")) && n.ends_with(".deb")
                    })
                })
                .collect()
        };
        if debs(cache).is_empty() {
            run(apt
                .command("apt-get")
                .args(["download", "-q", package])
                .current_dir(cache));
        }
        let deb = debs(cache).pop().expect("the downloaded package");
        let _ = std::fs::remove_dir_all(&tree);
        run(Command::new("dpkg").arg("-x").arg(&deb).arg(&tree));
        std::fs::write(&stamp, "").unwrap();
    }
    let modules = tree.join("lib/modules");
    let release = std::fs::read_dir(&modules)
        .unwrap_or_else(|e| panic!("{}: {e}", modules.display()))
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .expect("one kernel release under lib/modules");
    let vmlinuz = tree.join(format!("boot/vmlinuz-{release}"));
    assert!(vmlinuz.exists(), "{} is missing", vmlinuz.display());
    Kernel {
        release,
        vmlinuz,
        tree,
    }
}

/// Module directories copied into the initramfs (all of them, so that the kernel can load
/// whatever nft asks for through modprobe).
const MODULE_DIRS: [&str; 6] = [
    "kernel/net/netfilter",
    "kernel/net/ipv4",
    "kernel/net/ipv6",
    "kernel/net/sched",
    "kernel/drivers/net",
    "kernel/lib",
];

fn copy_modules(kernel: &Kernel, root: &Path) {
    let from = kernel.tree.join("lib/modules").join(&kernel.release);
    let to = root.join("lib/modules").join(&kernel.release);
    let mut stack: Vec<PathBuf> = MODULE_DIRS.iter().map(|d| from.join(d)).collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(&from).unwrap();
            let name = rel.to_string_lossy();
            let target = to.join(rel);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            // Busybox modprobe loads plain .ko files: unpack compressed ones here.
            if let Some(stem) = name.strip_suffix(".xz") {
                let bytes = Command::new("xz")
                    .arg("-dc")
                    .arg(&path)
                    .output()
                    .unwrap_or_else(|e| panic!("xz: {e}"));
                assert!(bytes.status.success(), "xz -d {}", path.display());
                std::fs::write(to.join(stem), bytes.stdout).unwrap();
            } else if let Some(stem) = name.strip_suffix(".zst") {
                let bytes = Command::new("zstd")
                    .args(["-dc", "-q"])
                    .arg(&path)
                    .output()
                    .unwrap_or_else(|e| panic!("zstd: {e}"));
                assert!(bytes.status.success(), "zstd -d {}", path.display());
                std::fs::write(to.join(stem), bytes.stdout).unwrap();
            } else if name.ends_with(".ko") {
                std::fs::copy(&path, &target).unwrap();
            }
        }
    }
    for f in [
        "modules.builtin",
        "modules.builtin.modinfo",
        "modules.order",
    ] {
        let src = from.join(f);
        if src.exists() {
            std::fs::copy(&src, to.join(f)).unwrap();
        }
    }
    run(Command::new("depmod")
        .arg("-b")
        .arg(root)
        .arg(&kernel.release));
}

/// Shared libraries of `binary` (as ldd lists them), with the dynamic loader.
fn libraries(binary: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .unwrap_or_else(|e| panic!("ldd: {e}"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next().map(PathBuf::from),
                None => l
                    .split_whitespace()
                    .next()
                    .filter(|p| p.starts_with('/'))
                    .map(PathBuf::from),
            }
        })
        .filter(|p| p.is_absolute())
        .collect()
}

fn copy_into(root: &Path, from: &Path, to: &str) {
    let target = root.join(to.trim_start_matches('/'));
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::copy(from, &target).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
}

fn which(program: &str) -> PathBuf {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("{program} is needed for the kernel matrix (./test.sh installs it)")
        })
}

/// Build `work/initramfs.cpio` for `kernel` with these binaries (name in /bin -> host path).
pub fn initramfs(kernel: &Kernel, work: &Path, binaries: &[(&str, &Path)]) -> PathBuf {
    let root = work.join("root");
    let _ = std::fs::remove_dir_all(&root);
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "run", "etc",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let busybox = which("busybox");
    std::fs::copy(&busybox, root.join("bin/busybox")).unwrap();
    let applets = run(Command::new(&busybox).arg("--list"));
    for applet in applets.lines().map(str::trim).filter(|a| !a.is_empty()) {
        let link = root.join("bin").join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", link).unwrap();
        }
    }
    for tool in ["modprobe", "insmod", "poweroff"] {
        std::os::unix::fs::symlink("../bin/busybox", root.join("sbin").join(tool)).unwrap();
    }
    let mut dynamic: Vec<PathBuf> = Vec::new();
    for (name, path) in binaries {
        let target = root.join("usr/bin").join(name);
        run(Command::new("strip").arg("-o").arg(&target).arg(path));
        dynamic.push(path.to_path_buf());
    }
    for program in ["ip", "nft"] {
        let path = which(program);
        copy_into(&root, &path, &format!("/usr/sbin/{program}"));
        dynamic.push(path);
    }
    let mut libs: Vec<PathBuf> = dynamic.iter().flat_map(|b| libraries(b)).collect();
    libs.sort();
    libs.dedup();
    for lib in libs {
        let real = std::fs::canonicalize(&lib).unwrap();
        copy_into(&root, &real, &lib.to_string_lossy());
    }
    copy_modules(kernel, &root);
    let init = root.join("init");
    std::fs::write(&init, include_str!("init.sh")).unwrap();
    std::fs::set_permissions(&init, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let cpio = work.join("initramfs.cpio");
    let status = Command::new("sh")
        .arg("-c")
        .arg("find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet > \"$0\"")
        .arg(&cpio)
        .current_dir(&root)
        .status()
        .expect("sh, find, cpio");
    assert!(status.success(), "cpio failed");
    cpio
}

/// Whether /dev/kvm can be opened (whether it can boot a stock kernel is found by trying).
fn kvm_present() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

fn qemu(
    kernel: &Kernel,
    initrd: &Path,
    console: &Path,
    data: &Path,
    kvm: bool,
) -> std::process::Child {
    // A log of an earlier boot must not be taken for this one's.
    let _ = std::fs::remove_file(console);
    let _ = std::fs::remove_file(data);
    let mut cmd = Command::new("qemu-system-x86_64");
    if kvm {
        cmd.args(["-accel", "kvm", "-cpu", "host", "-smp", "2"]);
    } else {
        // One vCPU: with two, TCG can run a CPU into the int3 the kernel plants while it
        // patches a static key (enabling a tracepoint), and the guest oopses.
        cmd.args(["-accel", "tcg", "-cpu", "max", "-smp", "1"]);
    }
    cmd.args(["-machine", "q35", "-m", "1024"])
        .args([
            "-nographic",
            "-no-reboot",
            "-monitor",
            "none",
            "-display",
            "none",
        ])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 panic=-1 loglevel=4"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-serial")
        .arg(format!("file:{}", data.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "qemu-system-x86_64: {e} (Debian package qemu-system-x86; ./test.sh installs it)"
            )
        })
}

/// Wait for `child` until `deadline`, or until `stop` says so; kill it on timeout.
fn wait(child: &mut std::process::Child, deadline: Instant, stop: impl Fn() -> bool) -> bool {
    loop {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        if Instant::now() > deadline || stop() {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Where the outcome of trying KVM on this host since its boot is kept (`works`/`fails`).
fn kvm_verdict_file(work: &Path) -> Option<PathBuf> {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(work.parent()?.join(format!("kvm-{}", boot_id.trim())))
}

/// Boot `kernel` with `initrd`; logs go to `work`. KVM is tried first where /dev/kvm opens
/// and used if the guest reaches init within 20 s (a paravirtual KVM that cannot boot a stock
/// kernel hangs instead, or qemu stops at once); otherwise TCG. The outcome is remembered
/// until the host reboots. `RSTAUDIT_KERNEL_ACCEL=tcg|kvm` forces one.
pub fn boot(kernel: &Kernel, initrd: &Path, work: &Path, limit: Duration) -> Boot {
    let console = work.join("console.log");
    let data = work.join("data.log");
    let started = Instant::now();
    let forced = std::env::var("RSTAUDIT_KERNEL_ACCEL").unwrap_or_default();
    let verdict_file = kvm_verdict_file(work);
    let known_to_fail = verdict_file
        .as_ref()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .is_some_and(|v| v.trim() == "fails");
    let mut accel = "tcg";
    let mut finished = false;
    if forced == "kvm" || (forced.is_empty() && kvm_present() && !known_to_fail) {
        let mut child = qemu(kernel, initrd, &console, &data, true);
        let reached_init = || std::fs::read_to_string(&data).is_ok_and(|d| d.contains("@@step"));
        let probe = Instant::now() + Duration::from_secs(20);
        let exited = wait(&mut child, probe, reached_init);
        // A qemu that exits before the guest's init ran did not boot it (seen: qemu's
        // `-cpu host` failing to set an MSR on a nested KVM, an assertion, exit at once).
        let works = reached_init();
        if let Some(f) = &verdict_file {
            let _ = std::fs::write(f, if works { "works" } else { "fails" });
        }
        if works {
            accel = "kvm";
            finished = exited || wait(&mut child, started + limit, || false);
        } else if forced == "kvm" {
            panic!(
                "RSTAUDIT_KERNEL_ACCEL=kvm but the guest did not reach init in 20 s; console: {}",
                console.display()
            );
        }
    }
    if accel == "tcg" {
        let mut child = qemu(kernel, initrd, &console, &data, false);
        finished = wait(&mut child, Instant::now() + limit, || false);
        if !finished {
            eprintln!("qemu killed after {} s", limit.as_secs());
        }
    }
    let text = std::fs::read(&data).unwrap_or_default();
    let text = String::from_utf8_lossy(&text).replace('\r', "");
    let steps = parse(&text);
    Boot {
        done: finished && text.contains("@@done"),
        steps,
        accel,
        console,
        data,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Split init.sh's output into steps.
pub fn parse(text: &str) -> BTreeMap<String, Step> {
    let mut steps = BTreeMap::new();
    let mut current: Option<(String, Step, bool)> = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("@@step ") {
            current = Some((name.to_string(), Step::default(), false));
        } else if line.starts_with("@@stderr ") {
            if let Some(c) = current.as_mut() {
                c.2 = true;
            }
        } else if let Some(rest) = line.strip_prefix("@@rc ") {
            if let Some((name, mut step, _)) = current.take() {
                step.rc = rest.rsplit(' ').next().and_then(|c| c.parse().ok());
                steps.insert(name, step);
            }
        } else if let Some((_, step, in_err)) = current.as_mut() {
            let out = if *in_err {
                &mut step.stderr
            } else {
                &mut step.stdout
            };
            out.push_str(line);
            out.push('\n');
        }
    }
    // A step cut off by the timeout is kept, without a code.
    if let Some((name, step, _)) = current {
        steps.insert(name, step);
    }
    steps
}

#[test]
fn kernel_series_of_names_and_packages() {
    assert_eq!(series_of("5.10"), "5.10");
    assert_eq!(series_of("linux-image-5.10.0-32-cloud-amd64"), "5.10");
    assert_eq!(series_of("linux-image-6.12.118+deb12-cloud-amd64"), "6.12");
    assert_eq!(series_of("6.1"), "6.1");
}

#[test]
fn natural_order_and_parsing() {
    let mut v = [
        "linux-image-6.1.0-9-cloud-amd64",
        "linux-image-6.1.0-57-cloud-amd64",
    ];
    v.sort_by_key(|n| natural_key(n));
    assert_eq!(v[1], "linux-image-6.1.0-57-cloud-amd64");
    let steps = parse("junk\n@@step a\nout\n@@stderr a\nerr\n@@rc a 3\n@@step b\nhalf\n");
    assert_eq!(steps["a"].stdout, "out\n");
    assert_eq!(steps["a"].stderr, "err\n");
    assert_eq!(steps["a"].rc, Some(3));
    assert_eq!(steps["b"].rc, None);
}
