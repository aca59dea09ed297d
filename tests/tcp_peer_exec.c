/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tcp_peer_exec - run a command against a fake NVMe/TCP target (tests/tcp_peer.h).
 *
 *   tcp_peer_exec [--blocks N] [--lba 512|4096] [--c2h-success] -- CMD [ARGS...]
 *
 * Starts a tcp_peer on 127.0.0.1 (an ephemeral port), runs CMD with
 * TCP_PEER_PORT, TCP_PEER_SUBNQN and TCP_PEER_ADDR (the library address,
 * tcp:127.0.0.1:PORT/SUBNQN) in its environment, then stops the peer and
 * prints what the target saw on stderr:
 *   tcp_peer: connects=N io_reads=N io_writes=N keep_alives=N rx_errors=N
 * Exit status: CMD's (128 + signal if it was killed), or 125 when the peer or
 * the command could not start. For the shell tests of the tools
 * (tests/test_perf_cli.sh): a real pnvme-perf run over TCP on the build machine.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tcp_peer.h"

static int usage(void)
{
	fprintf(stderr, "usage: tcp_peer_exec [--blocks N] [--lba 512|4096] [--c2h-success] "
		"-- CMD [ARGS...]\n");
	return 125;
}

int main(int argc, char **argv)
{
	struct tcp_peer_cfg cfg;
	struct tcp_peer_stats st;
	struct tcp_peer *peer;
	char buf[512];
	int i, status;
	pid_t pid;

	memset(&cfg, 0, sizeof(cfg));
	for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (!strcmp(argv[i], "--blocks") && i + 1 < argc)
			cfg.nblocks = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--lba") && i + 1 < argc)
			cfg.lba_size = (uint32_t)strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--c2h-success"))
			cfg.c2h_success = true;
		else
			return usage();
	}
	if (i + 1 >= argc)
		return usage();
	peer = tcp_peer_start(&cfg);
	if (!peer) {
		fprintf(stderr, "tcp_peer_exec: cannot start the peer: %s\n", strerror(errno));
		return 125;
	}
	snprintf(buf, sizeof(buf), "%u", tcp_peer_port(peer));
	setenv("TCP_PEER_PORT", buf, 1);
	setenv("TCP_PEER_SUBNQN", tcp_peer_subnqn(peer), 1);
	snprintf(buf, sizeof(buf), "tcp:127.0.0.1:%u/%s", tcp_peer_port(peer),
		 tcp_peer_subnqn(peer));
	setenv("TCP_PEER_ADDR", buf, 1);
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "tcp_peer_exec: fork: %s\n", strerror(errno));
		tcp_peer_stop(peer);
		return 125;
	}
	if (pid == 0) {
		execvp(argv[i + 1], argv + i + 1);
		fprintf(stderr, "tcp_peer_exec: %s: %s\n", argv[i + 1], strerror(errno));
		_exit(125);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			status = 125 << 8;
			break;
		}
	}
	tcp_peer_get_stats(peer, &st);
	tcp_peer_stop(peer);
	fprintf(stderr, "tcp_peer: connects=%u io_reads=%u io_writes=%u keep_alives=%u "
		"rx_errors=%u\n", st.connects_ok, st.io_cmds[PNVME_NVM_READ],
		st.io_cmds[PNVME_NVM_WRITE], st.keep_alives, st.rx_errors);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
