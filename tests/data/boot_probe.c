/*
 * boot_probe: a tiny static /init for booting the SISO kernel in QEMU.
 *
 * Build (i586, static musl, runs on Linux 2.6.11):
 *   zig cc -target x86-linux-musl -mcpu=i586 -static -Os -o init boot_probe.c
 *
 * It prints one "PROBE: ..." line per check on the console, then makes the
 * kernel restart (QEMU started with -no-reboot exits on that).  2.6.11
 * without ACPI cannot power the machine off, so reboot(RB_AUTOBOOT) is the
 * way out.  The last line is "PROBE: RESULT PASS" or "PROBE: RESULT FAIL".
 *
 * Checks:
 *   - /proc mounts; kernel release; the CPU flags the kernel sees; the
 *     network interfaces (/proc/net/dev: lo, eth* for QEMU's NICs);
 *   - the algorithm names listed in /proc/crypto, and that the ones the
 *     VPN needs are there (md5, sha1, des, des3_ede, aes, arc4);
 *   - the kernel log (klogctl) says the MPPE/MPPC module registered;
 *   - /dev/ppp (char 108,0) opens and PPPIOCNEWUNIT creates a ppp unit;
 *   - a PF_KEY v2 socket opens and answers an SADB_DUMP.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <unistd.h>

/* Kept local so the probe needs no kernel headers. */
#define PF_KEY_FAMILY 15            /* PF_KEY */
#define PF_KEY_V2 2
#define SADB_DUMP 10
#define SADB_SATYPE_UNSPEC 0
#define PPPIOCNEWUNIT _IOWR('t', 62, int)

struct sadb_msg_hdr {               /* struct sadb_msg, RFC 2367 */
	unsigned char version, type, errno_, satype;
	unsigned short len;             /* in 64-bit words */
	unsigned short reserved;
	unsigned int seq, pid;
};

static int failures;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof buf - 2)
		n = sizeof buf - 2;
	buf[n++] = '\n';
	write(1, "PROBE: ", 7);
	write(1, buf, n);
}

static void check(int ok, const char *what)
{
	say("%s %s", ok ? "ok  " : "FAIL", what);
	if (!ok)
		failures++;
}

static char *slurp(const char *path)
{
	static char buf[65536];
	int fd = open(path, O_RDONLY);
	ssize_t n, total = 0;

	if (fd < 0)
		return NULL;
	while (total < (ssize_t)sizeof buf - 1 &&
	       (n = read(fd, buf + total, sizeof buf - 1 - total)) > 0)
		total += n;
	close(fd);
	buf[total] = 0;
	return buf;
}

static void probe_crypto(void)
{
	static const char *need[] = { "md5", "sha1", "des", "des3_ede",
				      "aes", "arc4", NULL };
	char names[2048] = "";
	char *text = slurp("/proc/crypto"), *line, *save;
	int i;

	check(text != NULL, "read /proc/crypto");
	if (!text)
		return;
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "name", 4) == 0) {
			char *v = strchr(line, ':');
			if (!v)
				continue;
			v++;
			while (*v == ' ')
				v++;
			say("crypto %s", v);
			if (strlen(names) + strlen(v) + 3 < sizeof names) {
				strcat(names, " ");
				strcat(names, v);
				strcat(names, " ");
			}
		}
	}
	for (i = 0; need[i]; i++) {
		char key[64], what[80];
		snprintf(key, sizeof key, " %s ", need[i]);
		snprintf(what, sizeof what, "crypto algorithm %s registered",
			 need[i]);
		check(strstr(names, key) != NULL, what);
	}
}

static void probe_klog(void)
{
	static char buf[1 << 17];
	int n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, buf, sizeof buf - 1);

	check(n > 0, "klogctl read the kernel log");
	if (n <= 0)
		return;
	buf[n] = 0;
	/* the MPPE/MPPC patch's driver (variant mppc), or ppp-2.4.3's stock MPPE one */
	if (strstr(buf, "PPP MPPE Compression module registered"))
		check(1, "kernel log: stock MPPE module registered");
	else
		check(strstr(buf, "MPPE/MPPC encryption/compression module registered")
		      != NULL, "kernel log: MPPE/MPPC module registered");
	check(strstr(buf, "PPP generic driver") != NULL,
	      "kernel log: PPP generic driver");
}

static void probe_ppp(void)
{
	int fd, unit = -1;

	if (mknod("/dev/ppp", S_IFCHR | 0600, makedev(108, 0)) < 0 &&
	    errno != EEXIST)
		say("mknod /dev/ppp: %s", strerror(errno));
	fd = open("/dev/ppp", O_RDWR);
	if (fd < 0)
		say("open /dev/ppp: %s", strerror(errno));
	check(fd >= 0, "open /dev/ppp");
	if (fd < 0)
		return;
	if (ioctl(fd, PPPIOCNEWUNIT, &unit) < 0)
		say("PPPIOCNEWUNIT: %s", strerror(errno));
	else
		say("PPPIOCNEWUNIT gave ppp%d", unit);
	check(unit >= 0, "create a ppp unit");
	close(fd);
}

static void probe_pfkey(void)
{
	struct sadb_msg_hdr req, *rep;
	char buf[4096];
	ssize_t n;
	int s = socket(PF_KEY_FAMILY, SOCK_RAW, PF_KEY_V2);

	if (s < 0)
		say("socket(PF_KEY): %s", strerror(errno));
	check(s >= 0, "socket(PF_KEY, SOCK_RAW, PF_KEY_V2)");
	if (s < 0)
		return;
	memset(&req, 0, sizeof req);
	req.version = PF_KEY_V2;
	req.type = SADB_DUMP;
	req.satype = SADB_SATYPE_UNSPEC;
	req.len = sizeof req / 8;
	req.seq = 1;
	req.pid = getpid();
	if (write(s, &req, sizeof req) != sizeof req) {
		say("PF_KEY write: %s", strerror(errno));
		check(0, "PF_KEY SADB_DUMP");
		close(s);
		return;
	}
	n = read(s, buf, sizeof buf);
	rep = (struct sadb_msg_hdr *)buf;
	if (n >= (ssize_t)sizeof *rep)
		say("PF_KEY reply: type %u errno %u (%s)", rep->type,
		    rep->errno_, rep->errno_ == ENOENT ? "no SAD entries" : "?");
	check(n >= (ssize_t)sizeof *rep && rep->type == SADB_DUMP,
	      "PF_KEY SADB_DUMP answered");
	close(s);
}

int main(void)
{
	struct utsname u;
	char *text;

	mkdir("/proc", 0755);
	mkdir("/dev", 0755);
	say("boot_probe start (pid %d)", getpid());
	check(mount("proc", "/proc", "proc", 0, NULL) == 0, "mount /proc");
	if (uname(&u) == 0)
		say("uname %s %s %s", u.sysname, u.release, u.machine);
	text = slurp("/proc/cpuinfo");
	if (text) {
		char *f = strstr(text, "\nflags"), *e;
		if (f && (f = strchr(f, ':')) != NULL) {
			e = strchr(f, '\n');
			if (e)
				*e = 0;
			say("cpu flags%s", f);
		}
	}
	text = slurp("/proc/net/dev");
	if (text) {
		char *line, *save, *c;
		for (line = strtok_r(text, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save))
			if ((c = strchr(line, ':')) != NULL) {
				*c = 0;
				while (*line == ' ')
					line++;
				say("netdev %s", line);
			}
	}
	probe_crypto();
	probe_klog();
	probe_ppp();
	probe_pfkey();
	say("RESULT %s (%d failures)", failures ? "FAIL" : "PASS", failures);
	sync();
	reboot(RB_AUTOBOOT);
	say("reboot: %s", strerror(errno));
	for (;;)
		pause();
}
