/*
 * mschapv2_vector.c - check pppd's own MS-CHAPv2 code against the test
 * vector of RFC 2759 section 9.2 (and the MPPE key of RFC 3079 3.5.3,
 * which uses the same credentials).
 *
 * Nothing is reimplemented here: the program only calls functions of
 * pppd/chap_ms.c (ChapMS2, ChallengeHash, GenerateAuthenticatorResponse;
 * ChapMS2 runs the static NTPasswordHash/ChallengeResponse internally,
 * which exercises md4.c, sha1.c and pppcrypt.c on top of the libc's
 * setkey()/encrypt()).  Link it with pppd's objects, main.o replaced by a
 * copy of main.c compiled with -Dmain=pppd_main.
 *
 * Compile with the same defines as pppd (-DCHAPMS=1, and -DMPPE=1 to get
 * the MPPE key check) and -I for pppd/ and include/.  Works unchanged for
 * stock ppp-2.4.3 and for ppp-2.4.3 with the MPPE/MPPC 1.1 patch.
 *
 * Prints one line per check and PASS or FAIL; exits 0 only on PASS.
 */
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "pppd.h"
#include "chap_ms.h"

static const u_char auth_challenge[16] = {
	0x5B, 0x5D, 0x7C, 0x7D, 0x7B, 0x3F, 0x2F, 0x3E,
	0x3C, 0x2C, 0x60, 0x21, 0x32, 0x26, 0x26, 0x28
};
static const u_char peer_challenge[16] = {
	0x21, 0x40, 0x23, 0x24, 0x25, 0x5E, 0x26, 0x2A,
	0x28, 0x29, 0x5F, 0x2B, 0x3A, 0x33, 0x7C, 0x7E
};
/* RFC 2759 9.2: Challenge = ChallengeHash(PeerChallenge, AuthChallenge, "User") */
static const u_char want_challenge[8] = {
	0xD0, 0x2E, 0x43, 0x86, 0xBC, 0xE9, 0x12, 0x26
};
/* RFC 2759 9.2: PasswordHashHash = MD4(MD4(Unicode("clientPass"))) */
static u_char password_hash_hash[16] = {
	0x41, 0xC0, 0x0C, 0x58, 0x4B, 0xD2, 0xD9, 0x1C,
	0x40, 0x17, 0xA2, 0xA1, 0x2F, 0xA5, 0x9F, 0x3F
};
static const u_char want_nt_response[24] = {
	0x82, 0x30, 0x9E, 0xCD, 0x8D, 0x70, 0x8B, 0x5E,
	0xA0, 0x8F, 0xAA, 0x39, 0x81, 0xCD, 0x83, 0x54,
	0x42, 0x33, 0x11, 0x4A, 0x3D, 0x85, 0xD6, 0xDF
};
static const char want_auth_response[] =
	"S=407A5589115FD0D6209F510FE9C04566932CDA56";
#ifdef MPPE
/*
 * RFC 3079 3.5.3: SendStartKey128 for the same credentials.  The RFC derives
 * it as the server's send key (GetAsymmetricStartKey with IsServer TRUE),
 * which is the client's receive key.
 */
static const u_char want_server_send_key[16] = {
	0x8B, 0x7C, 0xDC, 0x14, 0x9B, 0x99, 0x3A, 0x1B,
	0xA1, 0x18, 0xCB, 0x15, 0x3F, 0x56, 0xDC, 0xCB
};
#endif

static int failures;

static void
hexline(const char *what, const u_char *p, int n)
{
	int i;

	printf("%-26s", what);
	for (i = 0; i < n; i++)
		printf("%02X", p[i]);
	printf("\n");
}

static void
check(const char *what, int ok)
{
	printf("%-26s%s\n", what, ok ? "ok" : "MISMATCH");
	if (!ok)
		failures++;
}

int
main(void)
{
	char user[] = "User";
	char secret[] = "clientPass";
	u_char rchallenge[16], pchallenge[16];
	u_char challenge[8];
	MS_Chap2Response response;
	u_char auth[MS_AUTH_RESPONSE_LENGTH + 1];
	u_char auth2[MS_AUTH_RESPONSE_LENGTH + 1];
	char sauth[MS_AUTH_RESPONSE_LENGTH + 3];

	memcpy(rchallenge, auth_challenge, sizeof(rchallenge));
	memcpy(pchallenge, peer_challenge, sizeof(pchallenge));

	/* 1. ChallengeHash (SHA-1 over both challenges and the user name) */
	ChallengeHash(pchallenge, rchallenge, user, challenge);
	hexline("ChallengeHash:", challenge, 8);
	check("  vs RFC 2759 9.2:", memcmp(challenge, want_challenge, 8) == 0);

	/* 2. ChapMS2 as the peer (authenticatee) computes it */
	memset(auth, 0, sizeof(auth));
	ChapMS2(rchallenge, pchallenge, user, secret, strlen(secret),
		&response, auth, MS_CHAP2_AUTHENTICATEE);
	hexline("NT-Response:", response.NTResp, 24);
	check("  vs RFC 2759 9.2:",
	      memcmp(response.NTResp, want_nt_response, 24) == 0);
	snprintf(sauth, sizeof(sauth), "S=%s", (char *)auth);
	printf("%-26s%s\n", "AuthenticatorResponse:", sauth);
	check("  vs RFC 2759 9.2:", strcmp(sauth, want_auth_response) == 0);

	/* 3. GenerateAuthenticatorResponse from the RFC's PasswordHashHash */
	memset(auth2, 0, sizeof(auth2));
	GenerateAuthenticatorResponse(password_hash_hash, response.NTResp,
				      pchallenge, rchallenge, user, auth2);
	snprintf(sauth, sizeof(sauth), "S=%s", (char *)auth2);
	printf("%-26s%s\n", "GenerateAuthResponse:", sauth);
	check("  vs RFC 2759 9.2:", strcmp(sauth, want_auth_response) == 0);

#ifdef MPPE
	/* 4. MPPE keys derived by ChapMS2 (SetMasterKeys) on both sides */
	hexline("MPPE client recv key:", mppe_recv_key, 16);
	check("  vs RFC 3079 3.5.3:", mppe_keys_set &&
	      memcmp(mppe_recv_key, want_server_send_key, 16) == 0);
	mppe_keys_set = 0;
	ChapMS2(rchallenge, pchallenge, user, secret, strlen(secret),
		&response, auth, MS_CHAP2_AUTHENTICATOR);
	hexline("MPPE server send key:", mppe_send_key, 16);
	check("  vs RFC 3079 3.5.3:", mppe_keys_set &&
	      memcmp(mppe_send_key, want_server_send_key, 16) == 0);
#endif

	printf("%s\n", failures ? "FAIL" : "PASS");
	return failures ? 1 : 0;
}
