/*
 * rngseed - credit entropy to the kernel's pool at boot, and save a seed for the next boot.
 *
 * Why: OpenSSL 3 (racoon) seeds with getrandom(), which Linux 2.6.11 lacks, and then waits in
 * select() on /dev/random until the kernel says its pool is readable. A freshly booted router
 * has entropy_avail = 0, so racoon would hang at its first random number. Writing to
 * /dev/random mixes bytes in but credits nothing; only ioctl(RNDADDENTROPY) credits.
 *
 * Where the seed comes from, in this order:
 *   1. the seed file saved at the previous boot (SEED_FILE, on persistent storage on a board);
 *   2. a per-device seed on the kernel command line, rngseed=<hex> (written by provisioning or
 *      the boot loader; test VMs use it);
 *   3. first-boot fallback: CPU timestamp jitter of a short busy loop, credited conservatively
 *      (one bit per eight samples). It is logged as a warning: provision a seed instead.
 * A seed is never baked into the image: every device flashed with it would share it.
 *
 * Usage: rngseed [SEED_FILE]   (default /var/lib/rngseed/seed)
 * Exit status: 0 when a seed was credited and the next one saved; 1 when crediting or saving
 * failed (the pool may stay empty: the boot script logs it and goes on); 2 on a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SEED_BYTES 512
#define JITTER_SAMPLES 4096

struct seed {
	struct rand_pool_info info;
	unsigned char data[SEED_BYTES];
};

static int credit(int fd, const unsigned char *buf, size_t len, int bits, const char *what)
{
	struct seed s;

	if (len > SEED_BYTES)
		len = SEED_BYTES;
	memcpy(s.data, buf, len);
	s.info.entropy_count = bits;
	s.info.buf_size = len;
	if (ioctl(fd, RNDADDENTROPY, &s.info) < 0) {
		fprintf(stderr, "rngseed: crediting %s: %s\n", what, strerror(errno));
		return -1;
	}
	printf("rngseed: credited %d bits from %s\n", bits, what);
	return 0;
}

static size_t read_file(const char *path, unsigned char *buf, size_t max)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = read(fd, buf, max);
	close(fd);
	return n > 0 ? (size_t)n : 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static size_t cmdline_seed(unsigned char *buf, size_t max)
{
	char line[4096];
	size_t n = read_file("/proc/cmdline", (unsigned char *)line, sizeof line - 1), len = 0;
	char *p;

	line[n] = '\0';
	for (p = strstr(line, "rngseed="); p && (p == line || p[-1] == ' '); p = NULL) {
		p += strlen("rngseed=");
		while (len < max && hexval(p[0]) >= 0 && hexval(p[1]) >= 0) {
			buf[len++] = (unsigned char)(hexval(p[0]) << 4 | hexval(p[1]));
			p += 2;
		}
	}
	return len;
}

static unsigned long long cycles(void)
{
#if defined(__i386__) || defined(__x86_64__)
	unsigned int lo, hi;

	/* The i586 has a time stamp counter; it is the finest clock a 2005 board offers. */
	__asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
	return (unsigned long long)hi << 32 | lo;
#else
	/* Other targets: the kernel's finest clock (no portable cycle counter in user space). */
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
#endif
}

static size_t jitter(unsigned char *buf, size_t max)
{
	volatile unsigned int sink = 0;
	unsigned long long last = cycles(), now;
	size_t i, k;

	memset(buf, 0, max);
	for (i = 0; i < JITTER_SAMPLES; i++) {
		for (k = 0; k < 64 + (last & 63); k++)
			sink += k;
		now = cycles();
		buf[i % max] ^= (unsigned char)((now - last) * 131 + (now >> 8));
		last = now;
	}
	return max;
}

static int save_seed(const char *path)
{
	unsigned char buf[SEED_BYTES];
	char tmp[512];
	int fd;

	if (read_file("/dev/urandom", buf, sizeof buf) != sizeof buf) {
		fprintf(stderr, "rngseed: cannot read /dev/urandom\n");
		return -1;
	}
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.new", path) >= sizeof tmp) {
		fprintf(stderr, "rngseed: seed file name too long: %s\n", path);
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, buf, sizeof buf) != (ssize_t)sizeof buf || fsync(fd) < 0) {
		fprintf(stderr, "rngseed: cannot write %s: %s\n", tmp, strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlink(tmp);
		}
		return -1;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		fprintf(stderr, "rngseed: cannot rename %s: %s\n", tmp, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

static int usage(FILE *to, int status)
{
	fprintf(to, "Usage: rngseed [SEED_FILE]\n"
		"Credit the saved seed (default /var/lib/rngseed/seed), a rngseed=<hex> seed from the\n"
		"kernel command line, or else CPU timing jitter to the kernel's entropy pool, then\n"
		"save a new seed to SEED_FILE for the next boot.\n"
		"Exit status: 0 credited and saved, 1 crediting or saving failed, 2 usage error.\n");
	return status;
}

int main(int argc, char **argv)
{
	const char *path = "/var/lib/rngseed/seed";
	unsigned char buf[SEED_BYTES];
	size_t len;
	int fd, credited = 0, failed = 0;

	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))
		return usage(stdout, 0);
	/* A name starting with '-' is an option we do not have, never a seed file to write. */
	if (argc > 2 || (argc == 2 && (argv[1][0] == '-' || argv[1][0] == '\0')))
		return usage(stderr, 2);
	if (argc == 2)
		path = argv[1];
	fd = open("/dev/random", O_RDWR);
	if (fd < 0) {
		fprintf(stderr, "rngseed: /dev/random: %s\n", strerror(errno));
		return 1;
	}
	len = read_file(path, buf, sizeof buf);
	if (len >= 32) {
		if (credit(fd, buf, len, (int)len * 8, path) == 0)
			credited = 1;
		else
			failed = 1;
	}
	len = cmdline_seed(buf, sizeof buf);
	if (len >= 16) {
		if (credit(fd, buf, len, (int)len * 8, "the kernel command line") == 0)
			credited = 1;
		else
			failed = 1;
	}
	if (!credited) {
		len = jitter(buf, 64);
		fprintf(stderr, "rngseed: warning: no provisioned seed; crediting CPU timing "
			"jitter (first-boot fallback)\n");
		if (credit(fd, buf, len, JITTER_SAMPLES / 8 > 512 ? 512 : JITTER_SAMPLES / 8,
			   "CPU timing jitter") == 0)
			credited = 1;
		else
			failed = 1;
	}
	close(fd);
	if (save_seed(path) < 0)
		failed = 1;
	return failed || !credited ? 1 : 0;
}
