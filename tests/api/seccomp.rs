//! runbox's seccomp profile (crates/sandbox/seccomp/runbox.json, SECURITY.md "The
//! seccomp profile"): what it denies is attempted from Python and bash and fails with
//! EPERM (clone3 with ENOSYS, 32-bit syscalls with SIGSYS), the server staying healthy;
//! and what sandboxes do every day runs under it. Under the engine's default profile
//! (`sandbox.seccomp: docker`) the attacks that profile allows succeed: io_uring,
//! ptrace of a process of the same user, adjtimex, modify_ldt, sync, AF_VSOCK, ping
//! sockets, personalities, 32-bit syscalls.
//!
//! The syscall numbers are x86_64's; on another machine the attacks are not tried.

use serde_json::json;

use crate::harness::{self, Options};
use crate::hostile_code::{kind, stdout, Hostile};

/// Each attack prints `<name> <errno name>` (`ok` when the call succeeded).
const ATTACKS: &str = r#"import ctypes, errno, os, platform, socket, mmap, time
if platform.machine() != 'x86_64':
    print('machine', platform.machine())
    raise SystemExit
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
me = os.getpid()

def call(*args):
    ctypes.set_errno(0)
    r = libc.syscall(*(ctypes.c_long(a) for a in args))
    return 'ok' if r >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))

def attempt(name, *args):
    outcome = call(*args)
    if os.getpid() != me:  # the child of a clone that should not have worked
        os._exit(0)
    print(name, outcome, flush=True)

KEEP = []

def buf(size=4096):
    """The address of a zeroed buffer that lives as long as the run."""
    b = ctypes.create_string_buffer(size)
    KEEP.append(b)
    return ctypes.addressof(b)

def s(text):
    b = ctypes.create_string_buffer(text)
    KEEP.append(b)
    return ctypes.addressof(b)

victim = os.fork()
if victim == 0:
    time.sleep(60)
    os._exit(0)
mem = buf()
iov_local = (ctypes.c_size_t * 2)(buf(), 16)
iov_remote = (ctypes.c_size_t * 2)(mem, 16)

# Another process of the same user: a sibling, then the code's own child (only one
# tracer at a time: the sibling goes first).
r, w = os.pipe()
if os.fork() == 0:
    os.write(w, call(101, 16, victim, 0, 0).encode())
    os._exit(0)
os.close(w)
print('ptrace-attach-sibling', os.read(r, 64).decode(), flush=True)
attempt('ptrace-attach-child', 101, 16, victim, 0, 0)
attempt('process_vm_readv', 310, victim, ctypes.addressof(iov_local), 1, ctypes.addressof(iov_remote), 1, 0)
attempt('process_vm_writev', 311, victim, ctypes.addressof(iov_local), 1, ctypes.addressof(iov_remote), 1, 0)
attempt('kcmp', 312, me, victim, 0, 0, 0)
try:
    pidfd = os.pidfd_open(victim)
except OSError:  # gVisor has no pidfd_open
    pidfd = -1
attempt('pidfd_getfd', 438, pidfd, 0, 0)
# Programmable kernel interfaces.
attempt('io_uring_setup', 425, 8, buf(120))
attempt('io_uring_enter', 426, 0, 1, 0, 0, 0, 0)
attempt('io_uring_register', 427, 0, 0, 0, 0)
attempt('io_setup', 206, 8, buf(8))
attempt('bpf', 321, 0, buf(128), 128)
attempt('perf_event_open', 298, buf(128), 0, -1, -1, 0)
attempt('userfaultfd', 323, 0)
attempt('keyctl', 250, 0, -3, 1)
attempt('add_key', 248, s(b'user'), s(b'k'), s(b'v'), 1, -2)
attempt('request_key', 249, s(b'user'), s(b'k'), 0, -2)
# Mounts and namespaces.
attempt('mount', 165, s(b'none'), s(b'/tmp'), s(b'tmpfs'), 0, 0)
attempt('umount2', 166, s(b'/tmp'), 2)
attempt('fsopen', 430, s(b'tmpfs'), 0)
attempt('fsconfig', 431, 3, 6, 0, 0, 0)
attempt('fsmount', 432, 3, 0, 0)
attempt('move_mount', 429, -100, s(b'/tmp'), -100, s(b'/mnt'), 0)
attempt('open_tree', 428, -100, s(b'/'), 1)
attempt('pivot_root', 155, s(b'/tmp'), s(b'/tmp'))
attempt('chroot', 161, s(b'/tmp'))
attempt('unshare-user', 272, 0x10000000)
attempt('unshare-mount', 272, 0x00020000)
attempt('unshare-net', 272, 0x40000000)
attempt('setns', 308, pidfd, 0)
attempt('clone-newuser', 56, 0x10000000 | 17, 0, 0, 0, 0)
attempt('clone-newpid', 56, 0x20000000 | 17, 0, 0, 0, 0)
attempt('clone3', 435, buf(88), 88)
# The kernel, the machine, its clock.
attempt('kexec_load', 246, 0, 0, 0, 0)
attempt('kexec_file_load', 320, -1, -1, 0, 0, 0)
attempt('init_module', 175, buf(), 16, s(b''))
attempt('finit_module', 313, -1, s(b''), 0)
attempt('delete_module', 176, s(b'loop'), 0)
attempt('acct', 163, 0)
attempt('swapon', 167, s(b'/tmp/swap'), 0)
attempt('swapoff', 168, s(b'/tmp/swap'))
attempt('reboot', 169, 0xfee1dead, 672274793, 0, 0)
attempt('settimeofday', 164, 0, 0)
attempt('clock_settime', 227, 0, buf(16))
attempt('adjtimex', 159, buf(208))
attempt('syslog', 103, 3, buf(), 16)
attempt('quotactl', 179, 0, s(b'/'), 0, 0)
attempt('lookup_dcookie', 212, 0, buf(), 16)
attempt('vhangup', 153)
attempt('sync', 162)
attempt('syncfs', 306, 0)
attempt('personality-no-aslr', 135, 0x0040000)
attempt('personality-linux32', 135, 0x0008)
# Files by handle, filesystem notification, hardware and x86 legacy, NUMA.
attempt('name_to_handle_at', 303, -100, s(b'/tmp'), buf(136), buf(8), 0)
attempt('open_by_handle_at', 304, -100, buf(136), 0)
attempt('fanotify_init', 300, 0, 0)
attempt('iopl', 172, 3)
attempt('ioperm', 173, 0x80, 1, 1)
attempt('modify_ldt', 154, 0, buf(), 16)
attempt('mbind', 237, mem, 4096, 1, 0, 0, 0)
attempt('set_mempolicy', 238, 1, 0, 0)
attempt('move_pages', 279, 0, 1, buf(8), 0, buf(8), 0)
attempt('memfd_secret', 447, 0)
# Obsolete calls.
for name, nr in [('uselib', 134), ('ustat', 136), ('sysfs', 139), ('_sysctl', 156), ('nfsservctl', 180),
                 ('create_module', 174), ('get_kernel_syms', 177), ('query_module', 178)]:
    attempt(name, nr, 0, 0, 0)
# Sockets of families and protocols the sandbox never needs.
for name, family, kind, proto in [('af_alg', 38, 5, 0), ('af_vsock', 40, 1, 0), ('af_packet', 17, 3, 0),
                                   ('netlink-sock-diag', 16, 3, 4), ('ping', 2, 2, 1), ('sctp', 2, 1, 132),
                                   ('inet-seqpacket', 2, 5, 0), ('inet6-raw', 10, 3, 58)]:
    try:
        socket.socket(family, kind, proto).close()
        print('socket-' + name, 'ok')
    except OSError as e:
        print('socket-' + name, errno.errorcode.get(e.errno, str(e.errno)))
# The 32-bit ABIs: getpid through int 0x80 (i386) and with the x32 bit.
page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
fn = ctypes.CFUNCTYPE(ctypes.c_long)(ctypes.addressof(ctypes.c_char.from_buffer(page)))
for name, code in [('i386-getpid', b'\xb8\x14\x00\x00\x00\xcd\x80\x48\x63\xc0\xc3'),
                   ('x32-getpid', b'\xb8\x27\x00\x00\x40\x0f\x05\xc3')]:
    page.seek(0)
    page.write(code)
    pid = os.fork()
    if pid == 0:
        os._exit(0 if fn() > 0 else 1)
    _, status = os.waitpid(pid, 0)
    print(name, 'SIGSYS' if os.WIFSIGNALED(status) and os.WTERMSIG(status) == 31 else 'ok' if status == 0 else 'failed')
os.kill(victim, 9)
status = open('/proc/self/status').read()
print([l for l in status.splitlines() if l.startswith('Seccomp:')][0].replace('\t', ' '))
"#;

/// Attacks that fail otherwise than with EPERM under runbox's profile.
const NOT_EPERM: [(&str, &str); 3] = [
    // ENOSYS, on which glibc falls back to clone, whose flags are checked.
    ("clone3", "ENOSYS"),
    // Killed: no 32-bit syscall is allowed at all.
    ("i386-getpid", "SIGSYS"),
    ("x32-getpid", "SIGSYS"),
];

#[tokio::test(flavor = "multi_thread")]
async fn what_the_profile_denies_fails_with_eperm() {
    let hostile = Hostile::start(Options {
        pool_size: 1,
        ..Options::default()
    })
    .await;

    let (result, _) = hostile.python(ATTACKS, 30.0).await;
    assert_eq!(result["success"], true, "{result}");
    let out = stdout(&result);
    if let Some(machine) = out.strip_prefix("machine ") {
        eprintln!("the attacks are written for x86_64, not {machine}: not tried");
        hostile.stop().await;
        return;
    }
    assert!(out.ends_with("Seccomp: 2\n"), "a filter is on: {result}");
    let attacks: Vec<(&str, &str)> = out
        .lines()
        .filter(|line| !line.starts_with("Seccomp:"))
        .map(|line| line.split_once(' ').expect("name and outcome"))
        .collect();
    assert_eq!(
        attacks.len(),
        80,
        "every attack says how it ended: {result}"
    );
    // gVisor's kernel answers some calls itself (ENOSYS for what it does not
    // implement, its own handling of the 32-bit ABIs): there an attack passes when it
    // failed at all.
    let own_kernel = harness::test_runtime_has_own_kernel();
    let mut wrong = Vec::new();
    for (name, outcome) in &attacks {
        let expected = NOT_EPERM
            .iter()
            .find(|(n, _)| n == name)
            .map_or("EPERM", |(_, e)| e);
        let failed_anyway = own_kernel && !matches!(*outcome, "ok");
        if outcome != &expected && !failed_anyway {
            wrong.push(format!("{name}: {outcome}, not {expected}"));
        }
    }
    assert!(wrong.is_empty(), "{}\n{result}", wrong.join("\n"));
    hostile.aftermath("denied syscalls from Python").await;

    // The same from bash, with the tools a shell has: unshare(1), setarch(8), and
    // perl's syscall() for calls no tool makes.
    let (result, _) = hostile
        .bash(
            r#"grep Seccomp: /proc/self/status | tr -d '\t'
unshare -U true 2>/dev/null; echo "unshare-user $?"
unshare -n true 2>/dev/null; echo "unshare-net $?"
setarch -R true 2>/dev/null; echo "setarch-no-aslr $?"
setarch linux32 true 2>/dev/null; echo "setarch-linux32 $?"
perl -e 'my $params = "\0" x 120; my $r = syscall(425, 8, $params); print "io_uring_setup ", ($r < 0 ? $!+0 : "fd"), "\n"'
sleep 30 & victim=$!
perl -e 'my $r = syscall(101, 16, $ARGV[0], 0, 0); print "ptrace-attach-sibling ", ($r < 0 ? $!+0 : "attached"), "\n"' $victim
kill $victim"#,
            20.0,
        )
        .await;
    assert_eq!(
        stdout(&result),
        "Seccomp:2\nunshare-user 1\nunshare-net 1\nsetarch-no-aslr 1\nsetarch-linux32 1\nio_uring_setup 1\nptrace-attach-sibling 1\n",
        "{result}"
    );
    hostile.aftermath("denied syscalls from bash").await;
    hostile.stop().await;
}

/// What sandboxes run every day, run under the profile: each line of the code checks
/// one part of the stack and prints what it got.
const STACK: &str = r#"import asyncio, os, signal, socket, subprocess, sys, tempfile, threading, time
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
print('seccomp', [l.split()[1] for l in open('/proc/self/status') if l.startswith('Seccomp:')][0])
# numpy and OpenBLAS with threads, in a fresh interpreter (the sandbox's numpy was
# loaded with one thread)
blas = "import numpy as np, os; a = np.random.default_rng(0).random((600, 600)); b = a @ a; w = np.linalg.eigvalsh(a + a.T); print(len(os.listdir('/proc/self/task')), os.cpu_count(), bool(np.isfinite(w).all()))"
threads, cpus, finite = subprocess.run([sys.executable, '-c', blas], env=dict(os.environ, OPENBLAS_NUM_THREADS='4'),
                                       capture_output=True, text=True, timeout=60, check=True).stdout.split()
print('openblas-threads', int(threads) > 1 or cpus == '1', finite)
import numpy as np, pandas as pd
df = pd.DataFrame({'k': np.arange(1000) % 7, 'v': np.linspace(0, 1, 1000)})
df.to_csv('frame.csv', index=False)
print('pandas', len(pd.read_csv('frame.csv').groupby('k').v.mean()))
import matplotlib.pyplot as plt
plt.plot([1, 3, 2])
plt.savefig('plot.png')
plt.show()
from PIL import Image, ImageDraw
im = Image.new('RGB', (32, 32))
ImageDraw.Draw(im).ellipse((2, 2, 30, 30), fill='red')
im.save('pil.png')
print('pil', Image.open('pil.png').size)
with mp.Pool(2) as pool:
    print('multiprocessing-pool', sum(pool.map(abs, range(-10, 10))))
queue = mp.Queue()
child = mp.Process(target=queue.put, args=(42,))
child.start()
print('multiprocessing-process', queue.get(timeout=20))
child.join()
with ProcessPoolExecutor(2) as ex:
    print('process-pool', list(ex.map(pow, [2, 3], [5, 5])))
with ThreadPoolExecutor(4) as ex:
    print('thread-pool', sum(ex.map(abs, range(-5, 5))))
pid = os.fork()
if pid == 0:
    os._exit(7)
print('fork', os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
print('subprocess', subprocess.check_output('seq 1 100 | sort -rn | head -1 | tr 0 o', shell=True, text=True).strip())
seen = []
signal.signal(signal.SIGUSR1, lambda *_: seen.append('usr1'))
os.kill(os.getpid(), signal.SIGUSR1)
signal.signal(signal.SIGALRM, lambda *_: seen.append('alarm'))
signal.setitimer(signal.ITIMER_REAL, 0.01)
time.sleep(0.2)
print('signals', seen)
async def echo():
    async def handle(reader, writer):
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(handle, '127.0.0.1', 0)
    reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
    writer.write(b'ping\n')
    line = await reader.readline()
    writer.close()
    server.close()
    proc = await asyncio.create_subprocess_exec('echo', 'sub', stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    return line.decode().strip(), out.decode().strip()
print('asyncio', asyncio.run(echo()))
with tempfile.TemporaryDirectory() as d, tempfile.NamedTemporaryFile(dir=d) as f:
    f.write(b'x')
    f.flush()
    print('tempfile', os.path.getsize(f.name))
listener = socket.create_server(('127.0.0.1', 0))
client = socket.create_connection(listener.getsockname())
conn, _ = listener.accept()
client.sendall(b'tcp')
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(('127.0.0.1', 0))
udp.sendto(b'udp', udp.getsockname())
# if_nameindex asks the kernel over NETLINK_ROUTE, as getaddrinfo's AI_ADDRCONFIG does.
print('loopback', conn.recv(3).decode(), udp.recv(3).decode(), 'lo' in [name for _, name in socket.if_nameindex()])
"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_scientific_stack_runs_under_the_profile() {
    let hostile = Hostile::start(Options {
        pool_size: 1,
        preload: vec!["numpy".into(), "matplotlib".into()],
        ..Options::default()
    })
    .await;

    let (result, _) = hostile
        .execute(json!({"code": STACK, "timeout": 120}))
        .await;
    assert_eq!(result["success"], true, "{result}");
    assert_eq!(
        stdout(&result),
        "seccomp 2\nopenblas-threads True True\npandas 7\npil (32, 32)\n\
         multiprocessing-pool 100\nmultiprocessing-process 42\nprocess-pool [32, 243]\n\
         thread-pool 25\nfork 7\nsubprocess 1oo\nsignals ['usr1', 'alarm']\n\
         asyncio ('ping', 'sub')\ntempfile 1\nloopback tcp udp True\n",
        "{result}"
    );
    let images: Vec<&str> = result["images"]
        .as_array()
        .expect("images")
        .iter()
        .filter_map(|image| image["name"].as_str())
        .collect();
    assert!(
        images.contains(&"plot.png") && images.contains(&"pil.png"),
        "{result}"
    );
    let shown = result["outputs"].as_array().expect("outputs");
    assert!(
        shown
            .iter()
            .any(|item| item["data"]["image/png"].is_object()),
        "plt.show() is an output: {result}"
    );
    hostile.aftermath("the scientific stack").await;

    let (result, _) = hostile
        .bash(
            "set -o pipefail; seq 1 1000 | sort -rn | head -3 | awk '{s += $1} END {print s}'; \
             cat <(echo substituted); mkfifo /tmp/fifo; echo through > /tmp/fifo & cat /tmp/fifo; \
             (sleep 0.1 &) ; wait; trap 'echo trapped' USR1; kill -USR1 $$; sync; echo synced",
            20.0,
        )
        .await;
    assert_eq!(
        stdout(&result),
        "2997\nsubstituted\nthrough\ntrapped\nsynced\n",
        "{result}"
    );
    assert_eq!(kind(&result), "(none)", "{result}");
    hostile.aftermath("bash under the profile").await;
    hostile.stop().await;
}
