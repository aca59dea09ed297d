/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tcp_peer.h - a scriptable fake NVMe/TCP target for the unit tests.
 *
 * A tcp_peer listens on 127.0.0.1 (ephemeral port) and behaves as a small,
 * strict NVMe over TCP controller: ICReq/ICResp (NVMe/TCP Transport
 * Specification 1.0 §3.6.2.1-2), Connect / Property Get / Property Set
 * (NVMe Base 2.0 §6), the admin commands a fabrics host needs (Identify,
 * Set/Get Features, Keep Alive, Get Log Page including the Discovery Log
 * Page, Abort, Async Event Request) and Read / Write / Flush / Write Zeroes
 * on one RAM-backed namespace (NSID 1), with in-capsule data, R2T/H2CData
 * and C2HData, header and data digests. Every PDU from the host goes through
 * the library's PDU receiver (src/tcp/pdu.h); a malformed one is answered
 * with a C2HTermReq and the connection is closed, as a target would.
 *
 * Fault knobs make it misbehave on purpose (tcp_peer_set_fault()), and
 * counters (tcp_peer_get_stats()) tell a test what the host did.
 *
 * Threads: one thread accepts, one thread serves each connection. Every
 * function here is thread safe. Nothing here prints unless PNVME_LOG asks.
 * The peer serves two subsystems: cfg.subnqn (an I/O controller) and the
 * well-known discovery subsystem PNVME_DISCOVERY_NQN (a discovery
 * controller returning cfg.disc entries in its Discovery Log Page).
 */
#ifndef PNVME_TESTS_TCP_PEER_H
#define PNVME_TESTS_TCP_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pnvme/tcp_spec.h>

#define TCP_PEER_DEFAULT_SUBNQN "nqn.2014-08.org.example:peer"
#define TCP_PEER_MAX_QID        64u   /* highest I/O queue id counted per queue */

/* Discovery Log Page (Base 2.0 §5.16.1.23, LID 70h) */
#define TCP_PEER_LOG_DISCOVERY  0x70u

/** One Discovery Log Page entry to serve (Base 2.0 Figure 262); strings NUL terminated. */
struct tcp_peer_disc_entry {
	uint8_t  trtype;     /* 3: TCP */
	uint8_t  adrfam;     /* 1: IPv4 */
	uint8_t  subtype;    /* 1: discovery subsystem, 2: NVM subsystem */
	uint8_t  treq;
	uint16_t portid;
	uint16_t cntlid;     /* 0xffff: dynamic */
	uint16_t asqsz;
	const char *trsvcid; /* "4420" */
	const char *traddr;  /* "127.0.0.1" */
	const char *subnqn;
};

/**
 * Configuration. Zero means "default" for every field, so
 * `struct tcp_peer_cfg cfg = {0};` gives a working target.
 */
struct tcp_peer_cfg {
	const char *subnqn;      /* I/O subsystem NQN; NULL: TCP_PEER_DEFAULT_SUBNQN */
	const char *hostnqn;     /* the only host NQN allowed; NULL: any host */
	uint64_t nblocks;        /* namespace 1 size in logical blocks; 0: 2048 */
	uint32_t lba_size;       /* 512 or 4096; 0: 512 */
	bool     no_hdgst;       /* refuse header digests (the ICResp leaves them off) */
	bool     no_ddgst;       /* refuse data digests */
	uint32_t maxh2cdata;     /* ICResp MAXH2CDATA; 0: 64 KiB */
	uint32_t r2t_len;        /* largest R2TL per R2T (split by the host at MAXH2CDATA);
				  * 0: MAXH2CDATA */
	uint32_t ioccsz;         /* I/O queue capsule size in bytes, SQE included, multiple of
				  * 16 (Identify reports it in 16-byte units); 0: 8 KiB + 64 */
	uint32_t maxr2t;         /* R2Ts outstanding per command, 1's based (the peer sends at
				  * most min(this, host MAXR2T + 1)); 0: 4 */
	uint32_t c2h_max;        /* largest C2HData DATAL; 0: 16 KiB */
	bool     c2h_success;    /* the last C2HData of a successful command carries SUCCESS and
				  * no CapsuleResp follows; only on queues whose Connect disabled
				  * SQ flow control (CATTR bit 2), as TCP 1.0 §3.6.2.8 and nvmet */
	uint8_t  mdts;           /* Identify MDTS, 4 KiB units as a power of two; 0: 6 (256 KiB) */
	uint16_t max_queues;     /* I/O queues granted by Set Features Number of Queues; 0: 4 */
	uint16_t queue_size;     /* CAP.MQES + 1 (largest SQSIZE + 1 a Connect may ask); 0: 128 */
	bool     kato_enforce;   /* tear the controller down (close its connections) when KATO
				  * passes without a Keep Alive command (Base 2.0 §3.9); only Keep
				  * Alive and Set Features KATO restart the timer, not other traffic */
	uint16_t cntlid_start;   /* first dynamic controller id; 0: 1 */
	const struct tcp_peer_disc_entry *disc; /* Discovery Log Page entries */
	unsigned n_disc;
	uint64_t genctr;         /* Discovery Log Page GENCTR */
};

/*
 * Fault knobs. Each is armed with tcp_peer_set_fault(): it fires on the next
 * `times` occasions (TCP_PEER_ALWAYS: every time) on connections of queue
 * `qid` (TCP_PEER_ANY_QID: any; a connection's qid is known after its
 * Connect, -1 before). `arg` is per fault, as listed.
 */
enum tcp_peer_fault {
	TCP_PEER_FAULT_REFUSE_ACCEPT,  /* accept, then close at once with a RST */
	TCP_PEER_FAULT_CLOSE_AFTER,    /* answer `arg` more commands, then reset the connection
					* (SO_LINGER 0) when the next one arrives */
	TCP_PEER_FAULT_SWALLOW,        /* take a command, never answer it (timeouts) */
	TCP_PEER_FAULT_CONNECT_STATUS, /* fail a Connect with SCT 1h, SC `arg` (0x80 incompatible
					* format, 0x81 controller busy, 0x82 invalid parameters
					* (IPO/IATTR name SUBNQN), 0x84 invalid host) */
	TCP_PEER_FAULT_WRONG_CCCID,    /* a CapsuleResp carries CID ^ (arg ? arg : 0x8000) */
	TCP_PEER_FAULT_UNKNOWN_CCCID,  /* before a response, an extra one for CID ^ (arg ?: 0x8000) */
	TCP_PEER_FAULT_DUP_RESP,       /* a CapsuleResp is sent twice */
	TCP_PEER_FAULT_R2T_FOR_READ,   /* answer a command reading data with an R2T first */
	TCP_PEER_FAULT_C2H_OUT_OF_RANGE, /* a C2HData with DATAO + DATAL past the command's data */
	TCP_PEER_FAULT_BAD_PDU_TYPE,   /* a PDU sent with type `arg` (0: 0x0f, not a type) */
	TCP_PEER_FAULT_BAD_HLEN,       /* a PDU sent with HLEN + 8 */
	TCP_PEER_FAULT_BAD_PDO,        /* a data PDU sent with PDO below HLEN */
	TCP_PEER_FAULT_BAD_PLEN,       /* a PDU sent with PLEN 4 (below its header) */
	TCP_PEER_FAULT_HDGST,          /* a PDU with a wrong header digest (when negotiated) */
	TCP_PEER_FAULT_DDGST,          /* a data PDU with a wrong data digest (when negotiated) */
	TCP_PEER_FAULT_TERM_REQ,       /* answer a command with a C2HTermReq (FES `arg` ?: 01h)
					* and close the connection */
	TCP_PEER_FAULT_ICRESP_PFV,     /* ICResp with PFV `arg` (0: 1) */
	TCP_PEER_FAULT_COUNT
};

#define TCP_PEER_ALWAYS   (-1)
#define TCP_PEER_ANY_QID  (-1)
/*
 * For the faults that spoil a PDU the peer sends (BAD_*, HDGST, DDGST): bit
 * (1 << PDU type) of `arg` restricts them to those types; 0 means any type
 * the fault applies to. (BAD_PDU_TYPE takes the type to send instead.)
 */
#define TCP_PEER_PDU(type) (1u << (type))

/** Counters, read with tcp_peer_get_stats(): a snapshot taken under the peer's lock. */
struct tcp_peer_stats {
	unsigned conns_accepted;   /* TCP connections accepted (refused ones included) */
	unsigned conns_open;       /* connections being served now */
	unsigned icreqs;           /* ICReqs answered */
	unsigned connects;         /* Connect commands seen (any result) */
	unsigned connects_ok;      /* ... that succeeded */
	unsigned admin_cmds[256];  /* admin commands by opcode (fabrics commands not included) */
	unsigned fabrics_cmds[16]; /* fabrics commands by FCTYPE (low 4 bits) */
	unsigned io_cmds[256];     /* I/O commands by opcode */
	unsigned io_per_qid[TCP_PEER_MAX_QID + 1]; /* I/O commands by queue id (clipped) */
	unsigned keep_alives;
	unsigned kato_expired;     /* controllers torn down for want of a Keep Alive */
	uint32_t last_cc;          /* last CC written by Property Set */
	bool     shutdown;         /* CC.SHN was set */
	uint64_t blocks_written;
	uint64_t blocks_read;
	unsigned r2ts;             /* R2T PDUs sent */
	unsigned h2c_pdus;         /* H2CData PDUs received */
	unsigned c2h_pdus;         /* C2HData PDUs sent */
	unsigned ddgst_errors;     /* host PDUs whose data digest did not match */
	unsigned host_term_reqs;   /* H2CTermReqs received */
	unsigned rx_errors;        /* host byte streams refused by the PDU receiver */
	uint8_t  last_rx_reason;   /* enum pnvme_tcp_rx_reason of the last one */
	unsigned faults_fired[TCP_PEER_FAULT_COUNT];
};

struct tcp_peer;

/**
 * Start a peer: listen on 127.0.0.1, an ephemeral port, and serve. `cfg`
 * may be NULL (defaults); the peer copies what it needs (the strings and
 * discovery entries included). Returns the peer, or NULL with errno set.
 */
struct tcp_peer *tcp_peer_start(const struct tcp_peer_cfg *cfg);

/** Stop serving: close every connection and the listener, join all threads, free. */
void tcp_peer_stop(struct tcp_peer *peer);

/** The TCP port the peer listens on (host byte order). */
uint16_t tcp_peer_port(const struct tcp_peer *peer);

/** The I/O subsystem NQN the peer serves (cfg.subnqn or the default). */
const char *tcp_peer_subnqn(const struct tcp_peer *peer);

/**
 * Arm (times != 0) or disarm (times == 0) a fault; see enum tcp_peer_fault.
 * Re-arming replaces the previous setting of that fault (and restarts the
 * CLOSE_AFTER count).
 */
void tcp_peer_set_fault(struct tcp_peer *peer, enum tcp_peer_fault fault, int times, int qid,
			uint32_t arg);

/** Disarm every fault. */
void tcp_peer_clear_faults(struct tcp_peer *peer);

/** Copy the counters to *st. */
void tcp_peer_get_stats(struct tcp_peer *peer, struct tcp_peer_stats *st);

/** Zero the counters (conns_open and last_cc excepted). */
void tcp_peer_reset_stats(struct tcp_peer *peer);

/**
 * Wait until `pred(stats, arg)` holds, re-checking whenever a counter
 * changes, for at most `timeout_ms`. Returns 0, or -ETIMEDOUT.
 */
int tcp_peer_wait(struct tcp_peer *peer, bool (*pred)(const struct tcp_peer_stats *st, void *arg),
		  void *arg, unsigned timeout_ms);

/**
 * The namespace's bytes (nblocks * lba_size of them, *len set when len is
 * not NULL). The peer writes them while serving Write / Write Zeroes:
 * compare them once the host's commands completed.
 */
uint8_t *tcp_peer_ns(struct tcp_peer *peer, size_t *len);

/**
 * Abruptly reset (RST) every open connection, as a target port going away
 * would; the peer keeps listening. Returns how many were reset.
 */
unsigned tcp_peer_kill_connections(struct tcp_peer *peer);

#endif /* PNVME_TESTS_TCP_PEER_H */
