/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_log.c - log sinks, PNVME_LOG, and pnvme_last_error() (log.c).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"

struct captured {
	unsigned n;
	enum pnvme_log_level level[16];
	char msg[16][600];
	void *arg;
};

static void capture(void *arg, enum pnvme_log_level level, const char *msg)
{
	struct captured *c = arg;

	c->arg = arg;
	if (c->n < 16) {
		c->level[c->n] = level;
		snprintf(c->msg[c->n], sizeof(c->msg[0]), "%s", msg);
	}
	c->n++;
}

static void test_callback_levels(void **state)
{
	(void)state;
	struct captured c = { 0 };

	pnvme_set_log(capture, &c, PNVME_LOG_NOTICE);
	assert_true(pnvme_log_enabled(PNVME_LOG_ERR));
	assert_true(pnvme_log_enabled(PNVME_LOG_NOTICE));
	assert_false(pnvme_log_enabled(PNVME_LOG_INFO));
	assert_false(pnvme_log_enabled(PNVME_LOG_DEBUG));
	log_err("err %d", 1);
	log_warn("warn %s", "two");
	log_notice("notice");
	log_info("info");
	log_debug("debug");
	pnvme_set_log(NULL, NULL, PNVME_LOG_ERR);

	assert_int_equal(c.n, 3);
	assert_ptr_equal(c.arg, &c);
	assert_int_equal(c.level[0], PNVME_LOG_ERR);
	assert_string_equal(c.msg[0], "err 1");
	assert_int_equal(c.level[1], PNVME_LOG_WARN);
	assert_string_equal(c.msg[1], "warn two");
	assert_int_equal(c.level[2], PNVME_LOG_NOTICE);
	assert_string_equal(c.msg[2], "notice");
}

static void test_callback_debug_and_long(void **state)
{
	(void)state;
	struct captured c = { 0 };
	char big[2000];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	pnvme_set_log(capture, &c, PNVME_LOG_DEBUG);
	log_debug("%s", big);
	pnvme_set_log(NULL, NULL, PNVME_LOG_ERR);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.level[0], PNVME_LOG_DEBUG);
	/* Truncated, still terminated. */
	assert_true(strlen(c.msg[0]) > 100);
	assert_true(strlen(c.msg[0]) < sizeof(big) - 1);
}

static void test_uninstalled_is_silent(void **state)
{
	(void)state;
	struct captured c = { 0 };

	pnvme_set_log(capture, &c, PNVME_LOG_DEBUG);
	pnvme_set_log(NULL, NULL, PNVME_LOG_DEBUG);
	log_err("nobody hears this");
	assert_int_equal(c.n, 0);
	if (getenv("PNVME_LOG") == NULL) {
		assert_false(pnvme_log_enabled(PNVME_LOG_ERR));
		assert_false(pnvme_log_enabled(PNVME_LOG_DEBUG));
	}
}

static void test_fail(void **state)
{
	(void)state;
	struct captured c = { 0 };

	pnvme_set_log(capture, &c, PNVME_LOG_DEBUG);
	errno = 1234;
	assert_int_equal(pnvme_fail(-EINVAL, "bad option '%s'", "foo"), -EINVAL);
	assert_int_equal(errno, 1234);
	assert_string_equal(pnvme_last_error(), "bad option 'foo'");
	/* Logged at debug level. */
	assert_int_equal(c.n, 1);
	assert_int_equal(c.level[0], PNVME_LOG_DEBUG);
	assert_string_equal(c.msg[0], "bad option 'foo'");

	/* Not logged when the sink wants less; still recorded. */
	pnvme_set_log(capture, &c, PNVME_LOG_INFO);
	assert_int_equal(pnvme_fail(-ENOMEM, "second %d", 2), -ENOMEM);
	assert_int_equal(c.n, 1);
	assert_string_equal(pnvme_last_error(), "second 2");
	pnvme_set_log(NULL, NULL, PNVME_LOG_ERR);

	/* Wrapping the previous error is allowed. */
	pnvme_fail(-ENODEV, "inner %s", "cause");
	assert_int_equal(pnvme_fail(-EIO, "outer: %s", pnvme_last_error()), -EIO);
	assert_string_equal(pnvme_last_error(), "outer: inner cause");

	/* Long messages are truncated to the buffer. */
	char big[1000];
	memset(big, 'y', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	pnvme_fail(-EIO, "%s", big);
	assert_true(strlen(pnvme_last_error()) >= 200);
	assert_true(strlen(pnvme_last_error()) < 300);
}

static void *other_thread(void *arg)
{
	(void)arg;
	/* A fresh thread has no error yet, whatever the main thread did. */
	if (strcmp(pnvme_last_error(), "") != 0)
		return (void *)1;
	pnvme_fail(-EIO, "thread error");
	if (strcmp(pnvme_last_error(), "thread error") != 0)
		return (void *)2;
	return NULL;
}

static void test_last_error_thread_local(void **state)
{
	(void)state;
	pthread_t t;
	void *ret;

	pnvme_fail(-EINVAL, "main error");
	assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
	assert_int_equal(pthread_join(t, &ret), 0);
	assert_null(ret);
	assert_string_equal(pnvme_last_error(), "main error");
}

/*
 * PNVME_LOG is read once per process, so each case runs in a re-executed
 * child with its own environment; the child logs one message per level and
 * the parent reads the child's stderr.
 */
static void child_log(void)
{
	log_err("e%d", 0);
	log_warn("w%d", 1);
	log_notice("n%d", 2);
	log_info("i%d", 3);
	log_debug("d%d", 4);
	pnvme_fail(-EIO, "f%d", 5);
}

/* This program, to re-execute: argv[0] (valgrind-friendly), else /proc/self/exe. */
static const char *self_path = "/proc/self/exe";

static void run_child(const char *env, char *out, size_t outlen)
{
	int fds[2];
	pid_t pid;
	size_t got = 0;
	ssize_t r;
	int status;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *argv[] = { "test_log", "--child", NULL };

		dup2(fds[1], STDERR_FILENO);
		close(fds[0]);
		close(fds[1]);
		if (env != NULL)
			setenv("PNVME_LOG", env, 1);
		else
			unsetenv("PNVME_LOG");
		execv(self_path, argv);
		_exit(127);
	}
	close(fds[1]);
	while (got + 1 < outlen && (r = read(fds[0], out + got, outlen - 1 - got)) > 0)
		got += (size_t)r;
	out[got] = '\0';
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_env_stderr(void **state)
{
	(void)state;
	char out[1024];

	run_child(NULL, out, sizeof(out));
	assert_string_equal(out, "");
	run_child("", out, sizeof(out));
	assert_string_equal(out, "");
	run_child("bogus", out, sizeof(out));
	assert_string_equal(out, "");
	run_child("err", out, sizeof(out));
	assert_string_equal(out, "pnvme: e0\n");
	run_child("warn", out, sizeof(out));
	assert_string_equal(out, "pnvme: e0\npnvme: w1\n");
	run_child("notice", out, sizeof(out));
	assert_string_equal(out, "pnvme: e0\npnvme: w1\npnvme: n2\n");
	run_child("info", out, sizeof(out));
	assert_string_equal(out, "pnvme: e0\npnvme: w1\npnvme: n2\npnvme: i3\n");
	run_child("debug", out, sizeof(out));
	assert_string_equal(out, "pnvme: e0\npnvme: w1\npnvme: n2\npnvme: i3\npnvme: d4\npnvme: f5\n");
	run_child("DEBUG", out, sizeof(out));
	assert_non_null(strstr(out, "pnvme: d4\n"));
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--child") == 0) {
		child_log();
		return 0;
	}
	if (argc > 0 && strchr(argv[0], '/') != NULL)
		self_path = argv[0];

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_callback_levels),
		cmocka_unit_test(test_callback_debug_and_long),
		cmocka_unit_test(test_uninstalled_is_silent),
		cmocka_unit_test(test_fail),
		cmocka_unit_test(test_last_error_thread_local),
		cmocka_unit_test(test_env_stderr),
	};

	return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
