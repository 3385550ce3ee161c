/*
 * forksrv: a bash loadable builtin that turns a warm bash into a fork server
 * for vmlab's agent (docs/architecture.md "Commands").
 *
 * The agent starts `/bin/bash -euo pipefail -c 'enable -f PATH forksrv &&
 * forksrv FD'` exactly as it starts a command's shell, FD being one end of a
 * SOCK_SEQPACKET socket pair. For each request (one message whose ancillary
 * data carries four descriptors: stdin, stdout, stderr and a control stream
 * socket) the builtin clones the shell with CLONE_PARENT, so the command's
 * parent is the agent as with an exec, and goes back to waiting. The child:
 *   - makes its own process group, moves the descriptors to 0, 1 and 2 and
 *     closes every other one but the control socket;
 *   - reads the go-ahead on the control socket: the working directory and
 *     the command (each a 32-bit native length and the bytes), which the
 *     agent sent right after the request; changes to the directory and
 *     answers 'C', 0 or the errno of the chdir, and its pid (each a native
 *     32-bit number), exiting having run nothing on an errno; closes it;
 *   - becomes the shell `/bin/bash -euo pipefail -c CMD` would have been at
 *     the point bash's main runs the command: $$, $PPID, SECONDS, RANDOM,
 *     $_, $HOSTNAME, BASH_EXECUTION_STRING, /proc/self/cmdline and comm,
 *     the nesting counters a builtin runs under;
 *   - runs the command as bash's run_one_command does, and exits through
 *     exit_shell (EXIT traps run).
 * The server closes its copies of the four descriptors and then answers 'P'
 * and the clone's pid on the control socket (a clone that fails, the negated
 * errno), so the command's output ends when the command does. The two
 * answers come in either order, each in one write. The server
 * itself is named vmlab-forksrv (comm and cmdline) and writes one byte on
 * its socket once it serves.
 *
 * One other message moves the server into the guest's root: 'S', the
 * directory, a NUL, then NAME=VALUE entries each ended by a NUL, with at
 * most one descriptor, a directory. The server started from the
 * initramfs's copy of bash before that root existed (docs/snapshots.md);
 * it changes its root to the descriptor's directory, its working directory
 * to the directory (as bash's own start would have set $PWD and its cache
 * of it), and binds and exports each variable. It answers 'S' and 0 or the
 * errno that stopped it on its socket; the agent kills a server that fails.
 *
 * No bash headers: bash exports its internals, and the few declarations
 * below are bash 5.2's (the load refuses any other version).
 *
 * Built on the host by the agent's packaging (internal/agent/forksrv/forksrv.go):
 *   cc -shared -fPIC -O2 -o forksrv.so forksrv.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* bash 5.2: command.h, builtins.h, shell.h, builtins/common.h */
typedef struct word_desc {
	char *word;
	int flags;
} WORD_DESC;
typedef struct word_list {
	struct word_list *next;
	WORD_DESC *word;
} WORD_LIST;
typedef int sh_builtin_func_t(WORD_LIST *);
struct builtin {
	char *name;
	sh_builtin_func_t *function;
	int flags;
	char *const *long_doc;
	const char *short_doc;
	char *handle;
};
#define BUILTIN_ENABLED 0x01
#define EXECUTION_SUCCESS 0
#define EXECUTION_FAILURE 1
#define EX_USAGE 258
#define SEVAL_NOHIST 0x004
#define SEVAL_RESETLINE 0x010
#define NOT_JUMPED 0
#define FORCE_EOF 1
#define DISCARD 2

extern char *dist_version;
extern sigjmp_buf top_level;
extern int parse_and_execute(char *, const char *, int);
extern void exit_shell(int) __attribute__((noreturn));
extern void *bind_variable(const char *, char *, int);
extern struct builtin *shell_builtins;
extern int num_shell_builtins;
extern int unbind_variable(const char *);
extern void builtin_error(const char *, ...);
extern void seedrand(void);
extern void set_ppid(void);
extern void unlink_fifo_list(void);
extern char *command_execution_string;
extern char *current_host_name;
extern char *dollar_vars[];
extern int dollar_dollar_pid;
extern int shell_pgrp, original_pgrp, pipeline_pgrp;
extern time_t shell_start_time;
extern struct timeval shellstart;
extern int last_command_exit_value, last_command_exit_signal;
extern int parse_and_execute_level, indirection_level, executing_builtin,
	executing_command_builtin, builtin_ignoring_errexit, executing_list,
	loop_level, comsub_ignore_return, evalnest, sourcenest, funcnest,
	return_catch_flag, breaking, continuing, line_number;
extern void *this_shell_builtin, *last_shell_builtin;
extern char *this_command_name;
extern void set_working_directory(char *);
extern void set_var_attribute(char *, int, int);
#define ATT_EXPORTED 0x0000001 /* variables.h att_exported */

static int readfull(int fd, void *buf, size_t n)
{
	char *p = buf;
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= r;
	}
	return 0;
}

static int writefull(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t r = write(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= r;
	}
	return 0;
}

/* answer writes an answer on a request's control socket in one write, so
 * that the server's and the clone's never interleave: the tag and a, then b
 * unless it is negative. */
static int answer(int fd, char tag, int32_t a, int32_t b)
{
	char buf[1 + 2 * sizeof(int32_t)];
	size_t n = 1 + sizeof a;
	buf[0] = tag;
	memcpy(buf + 1, &a, sizeof a);
	if (b >= 0) {
		memcpy(buf + n, &b, sizeof b);
		n += sizeof b;
	}
	return writefull(fd, buf, n);
}

/* readstring reads a 32-bit length and that many bytes into a new string. */
static char *readstring(int fd)
{
	uint32_t n;
	char *s;
	if (readfull(fd, &n, sizeof n) < 0 || n > (1u << 30))
		return NULL;
	if ((s = malloc((size_t)n + 1)) == NULL)
		return NULL;
	if (readfull(fd, s, n) < 0) {
		free(s);
		return NULL;
	}
	s[n] = '\0';
	return s;
}

/* setargs points the kernel's argument area (/proc/self/cmdline, what ps and
 * pkill -f read) at a copy of the n bytes at args, which end in a NUL. Root
 * only (CAP_SYS_RESOURCE); the agent runs as root. */
static int setargs(const char *args, size_t n)
{
	char *area = malloc(n);
	unsigned long start, end;
	if (area == NULL)
		return -1;
	memcpy(area, args, n);
	start = (unsigned long)area;
	end = start + n;
	/* The kernel wants start <= end after each step. */
	if (prctl(PR_SET_MM, PR_SET_MM_ARG_END, end, 0, 0) == 0)
		return prctl(PR_SET_MM, PR_SET_MM_ARG_START, start, 0, 0);
	if (prctl(PR_SET_MM, PR_SET_MM_ARG_START, start, 0, 0) < 0)
		return -1;
	return prctl(PR_SET_MM, PR_SET_MM_ARG_END, end, 0, 0);
}

/* setcmdline gives the process the arguments `bash -euo pipefail -c cmd`
 * has. */
static int setcmdline(const char *cmd)
{
	static const char head[] = "/bin/bash\0-euo\0pipefail\0-c";
	size_t n = sizeof head + strlen(cmd) + 1;
	char *args = malloc(n);
	int r;
	if (args == NULL)
		return -1;
	memcpy(args, head, sizeof head);
	memcpy(args + sizeof head, cmd, strlen(cmd) + 1);
	r = setargs(args, n);
	free(args);
	return r;
}

static void fail(const char *what)
{
	fprintf(stderr, "/bin/bash: vmlab forksrv: %s: %s\n", what, strerror(errno));
	fflush(stderr);
	_exit(126);
}

/* keepargs leaves /proc/self/cmdline alone (forksrv -k): only for tests on a
 * host whose root lacks CAP_SYS_RESOURCE, where the command line cannot be
 * set; the agent, the guest's PID 1, has it. */
static int keepargs;

/* child is the command's shell; it never returns. */
static void child(int in, int out, int err, int ctl)
{
	char *dir, *cmd, host[256];
	int pid, code;
	struct timeval now;

	setpgid(0, 0);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		_exit(126);
	if ((ctl = fcntl(ctl, F_DUPFD_CLOEXEC, 3)) < 0)
		_exit(126);
	/* ctl is the lowest free descriptor above 2: close the rest. */
	if (syscall(SYS_close_range, ctl + 1, ~0U, 0) < 0) {
		for (int fd = ctl + 1; fd < 1024; fd++)
			close(fd);
	}
	for (int fd = 3; fd < ctl; fd++)
		close(fd);

	pid = getpid();
	/* The go-ahead, which the agent sent with the request. */
	if ((dir = readstring(ctl)) == NULL || (cmd = readstring(ctl)) == NULL)
		_exit(126); /* the agent gave up on us: it reaps */
	/* Our answer, before anything runs: 0, or the errno of a chdir that
	 * failed, which the agent reports as the exec path would (nothing has
	 * run); then our pid. */
	code = chdir(dir) < 0 ? errno : 0;
	if (answer(ctl, 'C', code, pid) < 0 || code != 0)
		_exit(126);
	close(ctl);
	if (!keepargs && setcmdline(cmd) < 0)
		fail("set the command line");
	prctl(PR_SET_NAME, "bash", 0, 0, 0);

	/* What bash's main sets up before it runs a -c command. */
	dollar_dollar_pid = pid;
	set_ppid();
	shell_pgrp = original_pgrp = pid;
	pipeline_pgrp = 0;
	gettimeofday(&now, NULL);
	shellstart = now;
	shell_start_time = now.tv_sec;
	seedrand();
	if (gethostname(host, sizeof host) == 0) {
		host[sizeof host - 1] = '\0';
		current_host_name = strdup(host);
		bind_variable("HOSTNAME", host, 0);
	}
	command_execution_string = cmd;
	bind_variable("BASH_EXECUTION_STRING", cmd, 0);
	bind_variable("_", dollar_vars[0], 0);
	/* Not in a builtin, an eval, a function or a list any more. */
	parse_and_execute_level = indirection_level = 0;
	executing_builtin = executing_command_builtin = builtin_ignoring_errexit = 0;
	executing_list = loop_level = comsub_ignore_return = 0;
	evalnest = sourcenest = funcnest = return_catch_flag = 0;
	breaking = continuing = line_number = 0;
	this_shell_builtin = last_shell_builtin = NULL;
	this_command_name = NULL;
	last_command_exit_value = last_command_exit_signal = 0;

	/* bash's run_one_command. */
	code = sigsetjmp(top_level, 0);
	if (code != NOT_JUMPED) {
		unlink_fifo_list();
		if (code == FORCE_EOF)
			last_command_exit_value = 127;
		else if (code == DISCARD)
			last_command_exit_value = 1;
		exit_shell(last_command_exit_value);
	}
	parse_and_execute(strdup(cmd), "-c", SEVAL_NOHIST | SEVAL_RESETLINE);
	exit_shell(last_command_exit_value);
}

/* forget undoes what the bootstrap left that a new shell has not: this
 * builtin in the table (enable, compgen -b, type) and PIPESTATUS, which
 * bash makes at the end of its first command. The builtin's code stays
 * loaded; the table is bash's after enable -f, NULL-terminated. */
static void forget(void)
{
	for (int i = 0; i < num_shell_builtins; i++) {
		if (strcmp(shell_builtins[i].name, "forksrv") == 0) {
			memmove(&shell_builtins[i], &shell_builtins[i + 1],
				(num_shell_builtins - i) * sizeof shell_builtins[0]);
			num_shell_builtins--;
			break;
		}
	}
	unbind_variable("PIPESTATUS");
}

/* setup moves the server into the guest's root (the 'S' message above):
 * root is the root's directory, or -1 to keep this one; msg holds the
 * directory and the variables, n bytes ending in a NUL. It returns 0 or an
 * errno. */
static int setup(int root, char *msg, size_t n)
{
	char *p, *end = msg + n;

	if (n == 0 || msg[n - 1] != '\0')
		return EINVAL;
	if (root >= 0 && (fchdir(root) < 0 || chroot(".") < 0))
		return errno;
	if (chdir(msg) < 0)
		return errno;
	set_working_directory(msg);
	bind_variable("PWD", msg, 0);
	for (p = msg + strlen(msg) + 1; p < end;) {
		char *next = p + strlen(p) + 1, *eq = strchr(p, '=');
		if (eq == NULL || eq == p)
			return EINVAL;
		*eq = '\0';
		bind_variable(p, eq + 1, 0);
		set_var_attribute(p, ATT_EXPORTED, 0);
		p = next;
	}
	return 0;
}

/* rights puts the descriptors msg carries in fds and returns how many, or
 * 0 if it carries none or more than max (those it closes). */
static int rights(struct msghdr *msg, int *fds, int max)
{
	struct cmsghdr *c = CMSG_FIRSTHDR(msg);
	int n, all[4];
	if (c == NULL || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
	    (msg->msg_flags & MSG_CTRUNC))
		return 0;
	n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
	if (n > 4)
		n = 4; /* the control buffer holds no more */
	memcpy(all, CMSG_DATA(c), n * sizeof(int));
	if (n > max) {
		for (int i = 0; i < n; i++)
			close(all[i]);
		return 0;
	}
	memcpy(fds, all, n * sizeof(int));
	return n;
}

/* serve answers requests on sock until the agent closes its end. */
static int serve(int sock)
{
	static const char name[] = "vmlab-forksrv";
	char ready = 'R';

	/* Not a bash a test's pgrep, pidof or pkill would find. */
	prctl(PR_SET_NAME, name, 0, 0, 0);
	if (!keepargs && setargs(name, sizeof name) < 0) {
		builtin_error("set the command line: %s", strerror(errno));
		return EXECUTION_FAILURE;
	}
	forget();
	if (write(sock, &ready, 1) != 1) {
		builtin_error("say ready: %s", strerror(errno));
		return EXECUTION_FAILURE;
	}
	for (;;) {
		static char buf[1 << 16];
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(4 * sizeof(int))];
		} u;
		struct iovec iov = {buf, sizeof buf};
		struct msghdr msg = {0};
		int fds[4];
		ssize_t n;
		long pid;

		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = u.buf;
		msg.msg_controllen = sizeof u.buf;
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? EXECUTION_SUCCESS : EXECUTION_FAILURE;
		if (buf[0] == 'S' && !(msg.msg_flags & MSG_TRUNC)) {
			int root = -1, code;
			if (rights(&msg, &root, 1) == 0)
				root = -1;
			code = setup(root, buf + 1, (size_t)n - 1);
			if (root >= 0)
				close(root);
			if (answer(sock, 'S', code, -1) < 0)
				return EXECUTION_FAILURE;
			continue;
		}
		if (n != 1 || buf[0] != 0 || rights(&msg, fds, 4) != 4) {
			builtin_error("a request without its four descriptors");
			return EXECUTION_FAILURE;
		}
		pid = syscall(SYS_clone, CLONE_PARENT, NULL, NULL, NULL, 0);
		if (pid == 0)
			child(fds[0], fds[1], fds[2], fds[3]);
		if (pid < 0)
			pid = -errno; /* before the closes below can change errno */
		/* Our copies of the command's descriptors close before the agent
		 * hears of it: a short command's output then ends when it does,
		 * however late this server runs again. */
		for (int i = 0; i < 3; i++)
			close(fds[i]);
		answer(fds[3], 'P', (int32_t)pid, -1);
		close(fds[3]);
	}
}

static int forksrv_builtin(WORD_LIST *list)
{
	char *end;
	long fd;

	if (list != NULL && strcmp(list->word->word, "-k") == 0) {
		keepargs = 1;
		list = list->next;
	}
	if (list == NULL || list->next != NULL) {
		builtin_error("usage: forksrv [-k] FD");
		return EX_USAGE;
	}
	fd = strtol(list->word->word, &end, 10);
	if (*end != '\0' || fd < 3) {
		builtin_error("%s: not a descriptor above 2", list->word->word);
		return EX_USAGE;
	}
	return serve((int)fd);
}

/* forksrv_builtin_load refuses a bash whose internals it was not written
 * for: enable -f then fails, and the agent keeps exec'ing the shell. */
int forksrv_builtin_load(char *name)
{
	(void)name;
	if (dist_version == NULL || strcmp(dist_version, "5.2") != 0) {
		builtin_error("written for bash 5.2, not %s", dist_version ? dist_version : "?");
		return 0;
	}
	return 1;
}

static char *forksrv_doc[] = {
	"Serve vmlab's agent: run each command it sends in a clone of this shell.",
	NULL,
};

struct builtin forksrv_struct = {
	"forksrv", forksrv_builtin, BUILTIN_ENABLED, forksrv_doc, "forksrv [-k] FD", 0,
};
