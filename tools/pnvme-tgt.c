/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pnvme-tgt - export pnvme controllers' namespaces over NVMe/TCP.
 *
 *   pnvme-tgt -s nqn.2024-01.io.example:disk -n 0000:01:00.0,1 --allow-host NQN
 *   pnvme-tgt -l 0.0.0.0:4420 -s NQN -n emu:size=1G --allow-any-host -t 2
 *
 * Options name a subsystem (-s) and then what belongs to it (-n, --allow-host,
 * --allow-any-host); the discovery subsystem is served on the same port, and
 * alone on --discovery-port (8009) when asked. -c FILE reads all of it from a
 * JSON file (format in usage() and README.md), with a small strict parser
 * here: bounded size and depth, errors named by line:column.
 * SIGINT / SIGTERM stop it cleanly: commands at the backends complete, hosts
 * see their connections close, the backend controllers are shut down (CC.SHN).
 * Exit status: 0 after a clean stop, 1 on a runtime error, 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pnvme/pnvme.h>

#ifndef PNVME_TOOL_VERSION
#define PNVME_TOOL_VERSION "unknown"
#endif

#define MAX_DEVS 16
#define MAX_ITEMS 4096
#define JSON_MAX_BYTES (1u << 20)
#define JSON_MAX_DEPTH 8
#define JSON_MAX_DEPTH_STR "8"
#define JSON_MAX_NODES 16384

static volatile sig_atomic_t stop_now;

static void on_signal(int sig)
{
	(void)sig;
	stop_now = 1;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: pnvme-tgt [options]\n"
		"  -l, --listen ADDR:PORT   listen address (default 127.0.0.1:4420; [IPv6]:PORT)\n"
		"      --discovery-port N   also serve the discovery subsystem alone on port N of\n"
		"                           the listen address (the well-known one is 8009)\n"
		"  -s, --subsys NQN         add a subsystem; -n and --allow-* below apply to it\n"
		"  -n, --ns DEVICE[,NSID]   export namespace NSID (default 1) of DEVICE: a PCI\n"
		"                           address bound to vfio-pci, emu:... (pnvme/emu.h,\n"
		"                           file= for a file), or null:size=1G,bs=512 (a\n"
		"                           null device: reads zeroes, drops writes, no\n"
		"                           thread); repeatable\n"
		"      --allow-host NQN     let this host connect (repeatable; default: none)\n"
		"      --allow-any-host     let any host connect\n"
		"      --icd BYTES          in-capsule data on I/O queues (default 8192)\n"
		"      --digests            allow header and data digests\n"
		"  -t, --threads N          polling threads (default 1)\n"
		"      --cpus LIST          pin the threads to these cpus (e.g. 2,3)\n"
		"      --spin-us N          with nothing to do, a thread polls on this long\n"
		"                           (at most 50 while only backend commands are out)\n"
		"                           before it sleeps on its sockets and its backends'\n"
		"                           interrupts (default 200)\n"
		"  -c, --config FILE        JSON configuration (below); options given as well\n"
		"                           override its settings and add subsystems\n"
		"  -v, --verbose            log connections and controllers\n"
		"  -h, --help               this text\n"
		"  -V, --version            the version\n"
		"\n"
		"JSON configuration (every key optional unless marked; unknown keys are errors):\n"
		"  {\n"
		"    \"listen\": \"127.0.0.1:4420\",     \"discovery_port\": 8009,\n"
		"    \"icd\": 8192,   \"digests\": true,   \"threads\": 2,   \"cpus\": [2, 3],\n"
		"    \"subsystems\": [                   (required, at least one)\n"
		"      { \"nqn\": \"nqn.2024-01.io.example:disk\",          (required)\n"
		"        \"allow_any_host\": false,  \"hosts\": [\"nqn.2014-08.org.nvmexpress:uuid:...\"],\n"
		"        \"namespaces\": [ { \"device\": \"0000:01:00.0\",     (required)\n"
		"                          \"device_nsid\": 1,  \"nsid\": 1 } ] } ]\n"
		"  }\n"
		"  device_nsid: the device's namespace (default 1); nsid: the NSID hosts see\n"
		"  (default: the next free one). Files of at most 1 MiB, nesting at most %u deep.\n",
		JSON_MAX_DEPTH);
}

static void log_to_stderr(void *arg, enum pnvme_log_level level, const char *msg)
{
	(void)arg;
	(void)level;
	fprintf(stderr, "pnvme-tgt: %s\n", msg);
}

/* What the configuration file and the command line asked for, in order. */
struct item {
	char kind;        /* 's' subsystem, 'n' namespace, 'h' host, 'a' any host */
	const char *arg;  /* the NQN, or the device of a namespace */
	uint32_t nsid;    /* 'n': the NSID hosts see (0: next free) */
	uint32_t dev_nsid; /* 'n': the device's namespace */
};

static struct item items[MAX_ITEMS];
static unsigned nr_items;

static int add_item(char kind, const char *arg, uint32_t nsid, uint32_t dev_nsid)
{
	if (nr_items >= MAX_ITEMS) {
		fprintf(stderr, "pnvme-tgt: too many subsystems, namespaces and hosts (%u)\n",
			MAX_ITEMS);
		return -1;
	}
	items[nr_items++] = (struct item){ kind, arg, nsid, dev_nsid };
	return 0;
}

struct dev {
	char spec[512];
	struct pnvme_ctrl *ctrl;
};

static struct dev devs[MAX_DEVS];
static unsigned nr_devs;

static struct pnvme_ctrl *dev_open(const char *spec)
{
	struct pnvme_ctrl *ctrl = NULL;

	for (unsigned i = 0; i < nr_devs; i++)
		if (!strcmp(devs[i].spec, spec))
			return devs[i].ctrl;
	if (nr_devs >= MAX_DEVS) {
		fprintf(stderr, "pnvme-tgt: at most %u devices\n", MAX_DEVS);
		return NULL;
	}
	if (pnvme_ctrl_open(spec, NULL, &ctrl)) {
		fprintf(stderr, "pnvme-tgt: %s: %s\n", spec, pnvme_last_error());
		return NULL;
	}
	snprintf(devs[nr_devs].spec, sizeof(devs[nr_devs].spec), "%s", spec);
	devs[nr_devs++].ctrl = ctrl;
	return ctrl;
}

/* "DEVICE[,NSID]": a trailing ",digits" is the NSID (emu specs have commas too). */
static int split_ns(const char *arg, char *dev, size_t n, uint32_t *nsid)
{
	const char *comma = strrchr(arg, ',');

	*nsid = 1;
	if (comma && comma[1] && strspn(comma + 1, "0123456789") == strlen(comma + 1)) {
		*nsid = (uint32_t)strtoul(comma + 1, NULL, 10);
		if ((size_t)(comma - arg) >= n)
			return -1;
		snprintf(dev, n, "%.*s", (int)(comma - arg), arg);
		return *nsid ? 0 : -1;
	}
	if (strlen(arg) >= n)
		return -1;
	snprintf(dev, n, "%s", arg);
	return 0;
}

static int parse_cpus(const char *s, uint64_t *mask)
{
	char *end;

	*mask = 0;
	while (*s) {
		unsigned long c = strtoul(s, &end, 10);

		if (end == s || c > 63)
			return -1;
		*mask |= 1ull << c;
		s = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			return -1;
	}
	return *mask ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* A small strict JSON parser (RFC 8259): a tree of nodes in one pool       */
/* ------------------------------------------------------------------------ */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jnode {
	enum jtype type;
	int line, col;
	bool b;
	long long num;       /* integers only */
	char *s;             /* J_STR: decoded, NUL-terminated */
	const char *key;     /* a member of an object: its name */
	int key_line, key_col;
	int child, next;     /* -1: none */
};

struct jparser {
	char *p, *end;
	char *line_start;
	int line;
	unsigned depth;
	struct jnode *nodes;
	int nr;
	char err[256];
	int err_line, err_col;
};

static int jcol(const struct jparser *jp)
{
	return (int)(jp->p - jp->line_start) + 1;
}

static int jfail(struct jparser *jp, const char *fmt, const char *what)
{
	if (!jp->err[0]) {
		snprintf(jp->err, sizeof(jp->err), fmt, what);
		jp->err_line = jp->line;
		jp->err_col = jcol(jp);
	}
	return -1;
}

static void jskip(struct jparser *jp)
{
	while (jp->p < jp->end) {
		char c = *jp->p;

		if (c == '\n') {
			jp->line++;
			jp->line_start = jp->p + 1;
		} else if (c != ' ' && c != '\t' && c != '\r') {
			return;
		}
		jp->p++;
	}
}

static int jnew(struct jparser *jp, enum jtype t)
{
	struct jnode *n;

	if (jp->nr >= JSON_MAX_NODES)
		return jfail(jp, "more than %s values", "16384");
	n = &jp->nodes[jp->nr];
	memset(n, 0, sizeof(*n));
	n->type = t;
	n->line = jp->line;
	n->col = jcol(jp);
	n->child = n->next = -1;
	return jp->nr++;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A string at jp->p ('"'): decoded in place (never longer than its source). */
static int jstring(struct jparser *jp, char **out)
{
	char *dst = ++jp->p;

	*out = dst;
	for (;;) {
		unsigned char c;

		if (jp->p >= jp->end)
			return jfail(jp, "unterminated string%s", "");
		c = (unsigned char)*jp->p;
		if (c == '"') {
			jp->p++;
			*dst = 0;
			return 0;
		}
		if (c == '\n')
			return jfail(jp, "unterminated string (it runs into a new line)%s", "");
		if (c < 0x20)
			return jfail(jp, "control character in a string%s", "");
		if (c != '\\') {
			*dst++ = (char)c;
			jp->p++;
			continue;
		}
		if (jp->p + 1 >= jp->end)
			return jfail(jp, "unterminated string%s", "");
		switch (jp->p[1]) {
		case '"': *dst++ = '"'; break;
		case '\\': *dst++ = '\\'; break;
		case '/': *dst++ = '/'; break;
		case 'b': *dst++ = '\b'; break;
		case 'f': *dst++ = '\f'; break;
		case 'n': *dst++ = '\n'; break;
		case 'r': *dst++ = '\r'; break;
		case 't': *dst++ = '\t'; break;
		case 'u': {
			int v = 0;

			for (int i = 2; i < 6; i++) {
				int h = jp->p + i < jp->end ? hexval(jp->p[i]) : -1;

				if (h < 0)
					return jfail(jp, "bad \\u escape%s", "");
				v = v * 16 + h;
			}
			if (v == 0 || v > 0x7f)
				return jfail(jp, "\\u escapes: ASCII 0001..007F only%s", "");
			*dst++ = (char)v;
			jp->p += 4;
			break;
		}
		default:
			return jfail(jp, "bad escape in a string%s", "");
		}
		jp->p += 2;
	}
}

static int jvalue(struct jparser *jp);

/* The members of an object or the items of an array, after '{' / '['. */
static int jcontainer(struct jparser *jp, int self, bool obj)
{
	char close = obj ? '}' : ']';
	int last = -1;

	if (++jp->depth > JSON_MAX_DEPTH)
		return jfail(jp, "nested deeper than %s levels", JSON_MAX_DEPTH_STR);
	jp->p++;
	jskip(jp);
	if (jp->p < jp->end && *jp->p == close) {
		jp->p++;
		jp->depth--;
		return 0;
	}
	for (;;) {
		const char *key = NULL;
		int kl = 0, kc = 0, v;

		jskip(jp);
		if (obj) {
			if (jp->p >= jp->end || *jp->p != '"')
				return jfail(jp, "expected a member name (a string)%s", "");
			kl = jp->line;
			kc = jcol(jp);
			if (jstring(jp, (char **)&key))
				return -1;
			for (int k = jp->nodes[self].child; k >= 0; k = jp->nodes[k].next)
				if (!strcmp(jp->nodes[k].key, key)) {
					jp->line = kl;
					jp->p = jp->line_start + kc - 1;
					return jfail(jp, "duplicate member \"%s\"", key);
				}
			jskip(jp);
			if (jp->p >= jp->end || *jp->p != ':')
				return jfail(jp, "expected ':'%s", "");
			jp->p++;
			jskip(jp);
		}
		v = jvalue(jp);
		if (v < 0)
			return -1;
		jp->nodes[v].key = key;
		jp->nodes[v].key_line = kl;
		jp->nodes[v].key_col = kc;
		if (last < 0)
			jp->nodes[self].child = v;
		else
			jp->nodes[last].next = v;
		last = v;
		jskip(jp);
		if (jp->p < jp->end && *jp->p == ',') {
			jp->p++;
			continue;
		}
		if (jp->p < jp->end && *jp->p == close) {
			jp->p++;
			jp->depth--;
			return 0;
		}
		return jfail(jp, obj ? "expected ',' or '}'%s" : "expected ',' or ']'%s", "");
	}
}

static int jvalue(struct jparser *jp)
{
	int n;

	jskip(jp);
	if (jp->p >= jp->end)
		return jfail(jp, "unexpected end of file%s", "");
	switch (*jp->p) {
	case '{':
	case '[':
		n = jnew(jp, *jp->p == '{' ? J_OBJ : J_ARR);
		if (n < 0 || jcontainer(jp, n, jp->nodes[n].type == J_OBJ))
			return -1;
		return n;
	case '"':
		n = jnew(jp, J_STR);
		if (n < 0 || jstring(jp, &jp->nodes[n].s))
			return -1;
		return n;
	default:
		break;
	}
	if (*jp->p == '-' || (*jp->p >= '0' && *jp->p <= '9')) {
		const char *s = jp->p;
		long long v = 0;
		bool neg = *s == '-';

		n = jnew(jp, J_NUM);
		if (n < 0)
			return -1;
		if (neg)
			jp->p++;
		if (jp->p >= jp->end || *jp->p < '0' || *jp->p > '9')
			return jfail(jp, "bad number%s", "");
		if (*jp->p == '0' && jp->p + 1 < jp->end && jp->p[1] >= '0' && jp->p[1] <= '9')
			return jfail(jp, "numbers have no leading zeros%s", "");
		while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9') {
			if (v > (1ll << 53))
				return jfail(jp, "number too large%s", "");
			v = v * 10 + (*jp->p++ - '0');
		}
		if (jp->p < jp->end && (*jp->p == '.' || *jp->p == 'e' || *jp->p == 'E'))
			return jfail(jp, "integers only%s", "");
		jp->nodes[n].num = neg ? -v : v;
		return n;
	}
	for (int k = 0; k < 3; k++) {
		static const char *const lit[] = { "true", "false", "null" };
		size_t l = strlen(lit[k]);

		if ((size_t)(jp->end - jp->p) >= l && !memcmp(jp->p, lit[k], l)) {
			n = jnew(jp, k == 2 ? J_NULL : J_BOOL);
			if (n < 0)
				return -1;
			jp->nodes[n].b = k == 0;
			jp->p += l;
			return n;
		}
	}
	return jfail(jp, "unexpected character '%s'", (char[]){ *jp->p, 0 });
}

/* ------------------------------------------------------------------------ */
/* The configuration file                                                    */
/* ------------------------------------------------------------------------ */

struct cfg {
	const char *file;
	struct jnode *nodes;
	char *text;
};

static int cfg_err(const struct cfg *c, const struct jnode *n, const char *fmt, const char *a1)
{
	fprintf(stderr, "pnvme-tgt: %s:%d:%d: ", c->file, n->key ? n->key_line : n->line,
		n->key ? n->key_col : n->col);
	fprintf(stderr, fmt, a1);
	fputc('\n', stderr);
	return -1;
}

static const char *jtype_name(enum jtype t)
{
	static const char *const names[] = { "null", "a boolean", "a number", "a string",
					     "an array", "an object" };

	return names[t];
}

/* The member `n` must be of type t: else "KEY: want ..., not ...". */
static int want(const struct cfg *c, const struct jnode *n, enum jtype t)
{
	char msg[160];

	if (n->type == t)
		return 0;
	snprintf(msg, sizeof(msg), "\"%s\": want %s, not %s", n->key ? n->key : "item",
		 jtype_name(t), jtype_name(n->type));
	return cfg_err(c, n, "%s", msg);
}

static int want_int(const struct cfg *c, const struct jnode *n, long long lo, long long hi,
		    long long *v)
{
	char msg[160];

	if (want(c, n, J_NUM))
		return -1;
	if (n->num < lo || n->num > hi) {
		snprintf(msg, sizeof(msg), "\"%s\": %lld is out of range %lld..%lld",
			 n->key ? n->key : "item", n->num, lo, hi);
		return cfg_err(c, n, "%s", msg);
	}
	*v = n->num;
	return 0;
}

static int want_nonempty(const struct cfg *c, const struct jnode *n)
{
	if (want(c, n, J_STR))
		return -1;
	if (!n->s[0])
		return cfg_err(c, n, "\"%s\": empty string", n->key ? n->key : "item");
	return 0;
}

static int cfg_namespace(const struct cfg *c, const struct jnode *ns)
{
	const char *dev = NULL;
	long long nsid = 0, dev_nsid = 1;

	if (want(c, ns, J_OBJ))
		return -1;
	for (int k = ns->child; k >= 0; k = c->nodes[k].next) {
		const struct jnode *m = &c->nodes[k];

		if (!strcmp(m->key, "device")) {
			if (want_nonempty(c, m))
				return -1;
			dev = m->s;
		} else if (!strcmp(m->key, "nsid")) {
			if (want_int(c, m, 1, 1024, &nsid))
				return -1;
		} else if (!strcmp(m->key, "device_nsid")) {
			if (want_int(c, m, 1, 0xfffffffell, &dev_nsid))
				return -1;
		} else {
			return cfg_err(c, m, "unknown namespace key \"%s\" (device, device_nsid, nsid)",
				       m->key);
		}
	}
	if (!dev)
		return cfg_err(c, ns, "a namespace needs \"device\"%s", "");
	return add_item('n', dev, (uint32_t)nsid, (uint32_t)dev_nsid);
}

static int cfg_subsystem(const struct cfg *c, const struct jnode *s)
{
	const struct jnode *nqn = NULL, *hosts = NULL, *nss = NULL, *any = NULL;

	if (want(c, s, J_OBJ))
		return -1;
	for (int k = s->child; k >= 0; k = c->nodes[k].next) {
		const struct jnode *m = &c->nodes[k];

		if (!strcmp(m->key, "nqn"))
			nqn = m;
		else if (!strcmp(m->key, "hosts"))
			hosts = m;
		else if (!strcmp(m->key, "namespaces"))
			nss = m;
		else if (!strcmp(m->key, "allow_any_host"))
			any = m;
		else
			return cfg_err(c, m, "unknown subsystem key \"%s\" (nqn, namespaces, hosts, "
				       "allow_any_host)", m->key);
	}
	if (!nqn)
		return cfg_err(c, s, "a subsystem needs \"nqn\"%s", "");
	if (want_nonempty(c, nqn) || add_item('s', nqn->s, 0, 0))
		return -1;
	if (any) {
		if (want(c, any, J_BOOL))
			return -1;
		if (any->b && add_item('a', NULL, 0, 0))
			return -1;
	}
	if (hosts) {
		if (want(c, hosts, J_ARR))
			return -1;
		for (int k = hosts->child; k >= 0; k = c->nodes[k].next)
			if (want_nonempty(c, &c->nodes[k]) || add_item('h', c->nodes[k].s, 0, 0))
				return -1;
	}
	if (nss) {
		if (want(c, nss, J_ARR))
			return -1;
		for (int k = nss->child; k >= 0; k = c->nodes[k].next)
			if (cfg_namespace(c, &c->nodes[k]))
				return -1;
	}
	return 0;
}

static char *slurp(const char *file, size_t *len)
{
	FILE *f = fopen(file, "rb");
	char *buf;
	size_t n;

	if (!f) {
		fprintf(stderr, "pnvme-tgt: %s: %s\n", file, strerror(errno));
		return NULL;
	}
	buf = malloc(JSON_MAX_BYTES + 1);
	n = buf ? fread(buf, 1, JSON_MAX_BYTES + 1, f) : 0;
	if (buf && ferror(f)) {
		fprintf(stderr, "pnvme-tgt: %s: read error\n", file);
		free(buf);
		buf = NULL;
	} else if (buf && n > JSON_MAX_BYTES) {
		fprintf(stderr, "pnvme-tgt: %s: larger than %u bytes\n", file, JSON_MAX_BYTES);
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = n;
	return buf;
}

/* Parse `file` into opts and items; the strings stay in c->text. 0, or -1 (said why). */
static int load_config(struct cfg *c, struct pnvme_tgt_opts *o, char *listen, size_t lsz,
		       long long *disc_port)
{
	struct jparser jp = { 0 };
	const struct jnode *root;
	bool have_subsys = false;
	size_t len;
	int r;

	c->text = slurp(c->file, &len);
	if (!c->text)
		return -1;
	c->nodes = calloc(JSON_MAX_NODES, sizeof(*c->nodes));
	if (!c->nodes) {
		fprintf(stderr, "pnvme-tgt: out of memory\n");
		return -1;
	}
	jp.p = jp.line_start = c->text;
	jp.end = c->text + len;
	jp.line = 1;
	jp.nodes = c->nodes;
	if (memchr(c->text, 0, len)) {
		fprintf(stderr, "pnvme-tgt: %s: a NUL byte: not a JSON text\n", c->file);
		return -1;
	}
	r = jvalue(&jp);
	if (r >= 0) {
		jskip(&jp);
		if (jp.p < jp.end)
			r = jfail(&jp, "unexpected text after the configuration%s", "");
	}
	if (r < 0) {
		fprintf(stderr, "pnvme-tgt: %s:%d:%d: %s\n", c->file, jp.err_line, jp.err_col,
			jp.err);
		return -1;
	}
	root = &c->nodes[r];
	if (root->type != J_OBJ)
		return cfg_err(c, root, "the configuration is an object ({...})%s", "");
	for (int k = root->child; k >= 0; k = c->nodes[k].next) {
		const struct jnode *m = &c->nodes[k];
		long long v;

		if (!strcmp(m->key, "listen")) {
			if (want_nonempty(c, m))
				return -1;
			snprintf(listen, lsz, "%s", m->s);
		} else if (!strcmp(m->key, "discovery_port")) {
			if (want_int(c, m, 0, 65535, disc_port))
				return -1;
		} else if (!strcmp(m->key, "icd")) {
			if (want_int(c, m, 0, 65536, &v))
				return -1;
			o->icd_bytes = (uint32_t)v;
		} else if (!strcmp(m->key, "digests")) {
			if (want(c, m, J_BOOL))
				return -1;
			o->digests = m->b;
		} else if (!strcmp(m->key, "threads")) {
			if (want_int(c, m, 1, 64, &v))
				return -1;
			o->nr_threads = (uint32_t)v;
		} else if (!strcmp(m->key, "cpus")) {
			if (want(c, m, J_ARR))
				return -1;
			o->cpu_mask = 0;
			for (int i = m->child; i >= 0; i = c->nodes[i].next) {
				if (want_int(c, &c->nodes[i], 0, 63, &v))
					return -1;
				o->cpu_mask |= 1ull << v;
			}
			if (!o->cpu_mask)
				return cfg_err(c, m, "\"cpus\": empty list%s", "");
		} else if (!strcmp(m->key, "subsystems")) {
			if (want(c, m, J_ARR))
				return -1;
			for (int i = m->child; i >= 0; i = c->nodes[i].next) {
				if (cfg_subsystem(c, &c->nodes[i]))
					return -1;
				have_subsys = true;
			}
		} else {
			return cfg_err(c, m, "unknown key \"%s\" (listen, discovery_port, icd, "
				       "digests, threads, cpus, subsystems)", m->key);
		}
	}
	if (!have_subsys)
		return cfg_err(c, root, "no \"subsystems\": nothing to export%s", "");
	return 0;
}

/* ------------------------------------------------------------------------ */

/* "ADDR:PORT" with its port replaced: the discovery listener's address. */
static int with_port(const char *listen, long long port, char *out, size_t n)
{
	const char *colon = strrchr(listen, ':');

	if (!colon || (size_t)snprintf(out, n, "%.*s:%lld", (int)(colon - listen), listen, port) >= n)
		return -1;
	return 0;
}

static int configure(struct pnvme_tgt *tgt)
{
	const char *subsys = NULL;

	for (unsigned i = 0; i < nr_items; i++) {
		const struct item *it = &items[i];
		struct pnvme_ctrl *ctrl;
		int rc = 0;

		if (it->kind == 's') {
			subsys = it->arg;
			rc = pnvme_tgt_add_subsys(tgt, subsys);
		} else if (!subsys) {
			fprintf(stderr, "pnvme-tgt: -n and --allow-* need a subsystem (-s) first\n");
			return 2;
		} else if (it->kind == 'n') {
			ctrl = dev_open(it->arg);
			if (!ctrl)
				return 1;
			rc = pnvme_tgt_add_ns(tgt, subsys, it->nsid, ctrl, it->dev_nsid);
			if (rc > 0) {
				printf("pnvme-tgt: %s namespace %d = %s namespace %u\n", subsys, rc,
				       it->arg, it->dev_nsid);
				rc = 0;
			}
		} else {
			rc = pnvme_tgt_allow_host(tgt, subsys, it->kind == 'h' ? it->arg : NULL);
		}
		if (rc) {
			fprintf(stderr, "pnvme-tgt: %s\n", pnvme_last_error());
			return 1;
		}
	}
	return 0;
}

/* Command-line settings, applied over the configuration file's. */
struct cl {
	const char *listen;
	long long disc_port;       /* -1: not given */
	long long icd, threads;    /* -1: not given */
	long long spin_us;         /* -1: not given */
	bool digests;
	uint64_t cpu_mask;
};

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "discovery-port", required_argument, NULL, 'P' },
		{ "subsys", required_argument, NULL, 's' },
		{ "ns", required_argument, NULL, 'n' },
		{ "allow-host", required_argument, NULL, 'H' },
		{ "allow-any-host", no_argument, NULL, 'A' },
		{ "icd", required_argument, NULL, 'I' },
		{ "digests", no_argument, NULL, 'D' },
		{ "threads", required_argument, NULL, 't' },
		{ "cpus", required_argument, NULL, 'C' },
		{ "spin-us", required_argument, NULL, 'S' },
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static char listen[300] = "127.0.0.1:4420", dlisten[320];
	struct cl cl = { .disc_port = -1, .icd = -1, .threads = -1, .spin_us = -1 };
	struct cfg cfg = { 0 };
	struct pnvme_tgt_opts o;
	struct pnvme_tgt *tgt = NULL;
	struct sigaction sa;
	long long disc_port = -1;
	bool verbose = false;
	char *end, dev[512];
	uint32_t nsid;
	int opt, rc;

	pnvme_tgt_opts_default(&o);
	o.digests = false;
	while ((opt = getopt_long(argc, argv, "l:s:n:t:c:vhV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			cl.listen = optarg;
			break;
		case 'P':
			cl.disc_port = strtoll(optarg, &end, 10);
			if (*end || !*optarg || cl.disc_port < 1 || cl.disc_port > 65535) {
				fprintf(stderr, "pnvme-tgt: bad --discovery-port '%s'\n", optarg);
				return 2;
			}
			break;
		case 's':
		case 'H':
		case 'A':
			if (add_item(opt == 'H' ? 'h' : opt == 'A' ? 'a' : 's', optarg, 0, 0))
				return 2;
			break;
		case 'n':
			if (split_ns(optarg, dev, sizeof(dev), &nsid)) {
				fprintf(stderr, "pnvme-tgt: bad namespace '%s'\n", optarg);
				return 2;
			}
			/* the device part: the argument with its ",NSID" cut off, in place */
			if (strlen(dev) < strlen(optarg))
				optarg[strlen(dev)] = 0;
			if (add_item('n', optarg, 0, nsid))
				return 2;
			break;
		case 'I':
			cl.icd = strtoll(optarg, &end, 0);
			if (*end || !*optarg || cl.icd < 0) {
				fprintf(stderr, "pnvme-tgt: bad --icd '%s'\n", optarg);
				return 2;
			}
			break;
		case 'D':
			cl.digests = true;
			break;
		case 't':
			cl.threads = strtoll(optarg, &end, 0);
			if (*end || !*optarg || cl.threads <= 0 || cl.threads > 64) {
				fprintf(stderr, "pnvme-tgt: bad --threads '%s' (1..64)\n", optarg);
				return 2;
			}
			break;
		case 'S':
			cl.spin_us = strtoll(optarg, &end, 0);
			if (*end || !*optarg || cl.spin_us < 0 || cl.spin_us > 1000000) {
				fprintf(stderr, "pnvme-tgt: bad --spin-us '%s' (0..1000000)\n", optarg);
				return 2;
			}
			break;
		case 'C':
			if (parse_cpus(optarg, &cl.cpu_mask)) {
				fprintf(stderr, "pnvme-tgt: bad --cpus '%s'\n", optarg);
				return 2;
			}
			break;
		case 'c':
			if (cfg.file) {
				fprintf(stderr, "pnvme-tgt: one -c at most\n");
				return 2;
			}
			cfg.file = optarg;
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("pnvme-tgt %s\n", PNVME_TOOL_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pnvme-tgt: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (cfg.file) {
		/* The file's subsystems come first; the command line's follow. */
		unsigned n_cl = nr_items;
		struct item *cl_items = malloc((n_cl ? n_cl : 1) * sizeof(*cl_items));

		if (!cl_items)
			return 1;
		memcpy(cl_items, items, n_cl * sizeof(*cl_items));
		nr_items = 0;
		rc = load_config(&cfg, &o, listen, sizeof(listen), &disc_port);
		for (unsigned i = 0; !rc && i < n_cl; i++)
			rc = add_item(cl_items[i].kind, cl_items[i].arg, cl_items[i].nsid,
				      cl_items[i].dev_nsid);
		free(cl_items);
		if (rc) {
			free(cfg.nodes);
			free(cfg.text);
			return 2;
		}
	}
	if (cl.listen)
		snprintf(listen, sizeof(listen), "%s", cl.listen);
	if (cl.disc_port >= 0)
		disc_port = cl.disc_port;
	if (cl.icd >= 0)
		o.icd_bytes = cl.icd > 0xffffffffll ? 0xffffffffu : (uint32_t)cl.icd;
	if (cl.threads > 0)
		o.nr_threads = (uint32_t)cl.threads;
	if (cl.digests)
		o.digests = true;
	if (cl.cpu_mask)
		o.cpu_mask = cl.cpu_mask;
	if (cl.spin_us >= 0)
		o.idle_spin_us = (uint32_t)cl.spin_us;
	o.listen = listen;
	if (disc_port > 0) {
		if (with_port(listen, disc_port, dlisten, sizeof(dlisten))) {
			fprintf(stderr, "pnvme-tgt: bad listen address '%s'\n", listen);
			return 2;
		}
		o.discovery_listen = dlisten;
	}
	if (!nr_items) {
		fprintf(stderr, "pnvme-tgt: nothing to export: give -s NQN -n DEVICE\n");
		usage(stderr);
		return 2;
	}
	pnvme_set_log(log_to_stderr, NULL, verbose ? PNVME_LOG_INFO : PNVME_LOG_WARN);
	if (pnvme_tgt_create(&o, &tgt)) {
		fprintf(stderr, "pnvme-tgt: %s\n", pnvme_last_error());
		return 2;
	}
	rc = configure(tgt);
	if (!rc && pnvme_tgt_start(tgt)) {
		fprintf(stderr, "pnvme-tgt: %s\n", pnvme_last_error());
		rc = 1;
	}
	if (!rc) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_signal;
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		if (o.discovery_listen)
			printf("pnvme-tgt: discovery on %s, port %u\n", o.discovery_listen,
			       pnvme_tgt_discovery_port(tgt));
		printf("pnvme-tgt: listening on %s, port %u\n", o.listen, pnvme_tgt_port(tgt));
		fflush(stdout);
		while (!stop_now)
			nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000 * 1000 }, NULL);
		printf("pnvme-tgt: stopping\n");
	}
	pnvme_tgt_destroy(tgt);
	for (unsigned i = 0; i < nr_devs; i++)
		if (pnvme_ctrl_close(devs[i].ctrl)) {
			fprintf(stderr, "pnvme-tgt: closing %s: %s\n", devs[i].spec, pnvme_last_error());
			rc = rc ? rc : 1;
		}
	free(cfg.nodes);
	free(cfg.text);
	return rc;
}
