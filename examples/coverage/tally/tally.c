/* tally is the C half of the coverage example, built with `gcc --coverage`:
 * `tally serve PORT` counts the words of each UDP datagram it receives and
 * answers with the count; `tally send HOST PORT TEXT` sends TEXT and prints
 * the answer. The server's machine runs the one, the client's the other, and
 * both run count_words (the client checks the answer against its own count).
 * The server says "listening" once it is bound (a service's wait_for_log
 * waits for it) and stops on SIGTERM by returning from main, so the
 * counters are written. The client gives up after 5 s without an answer
 * rather than waiting forever for a datagram that was lost. */
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;

static void on_term(int sig) { (void)sig; stopping = 1; }

static int count_words(const char *s) {
	int n = 0, in = 0;
	for (; *s; s++) {
		if (*s == ' ' || *s == '\n' || *s == '\t') {
			in = 0;
		} else if (!in) {
			in = 1;
			n++;
		}
	}
	return n;
}

static int serve(const char *port) {
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_DGRAM, .ai_flags = AI_PASSIVE}, *ai;
	if (getaddrinfo(NULL, port, &hints, &ai) != 0) {
		fprintf(stderr, "tally: bad port %s\n", port);
		return 1;
	}
	int fd = socket(ai->ai_family, ai->ai_socktype, 0);
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		perror("tally: bind");
		return 1;
	}
	/* SIGTERM is blocked but while pselect waits, so that one arriving
	 * between the check of stopping and the wait ends the wait too. */
	struct sigaction sa = {.sa_handler = on_term};
	sigaction(SIGTERM, &sa, NULL);
	sigset_t term, waiting;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, &waiting);
	printf("tally: listening on UDP port %s\n", port);
	fflush(stdout);
	while (!stopping) {
		fd_set readable;
		FD_ZERO(&readable);
		FD_SET(fd, &readable);
		if (pselect(fd + 1, &readable, NULL, NULL, NULL, &waiting) < 0)
			continue; /* EINTR: stopping is set */
		char buf[1024], out[32];
		struct sockaddr_storage from;
		socklen_t fromlen = sizeof from;
		ssize_t n = recvfrom(fd, buf, sizeof buf - 1, 0, (struct sockaddr *)&from, &fromlen);
		if (n < 0)
			continue;
		buf[n] = 0;
		int len = snprintf(out, sizeof out, "%d\n", count_words(buf));
		sendto(fd, out, len, 0, (struct sockaddr *)&from, fromlen);
	}
	close(fd);
	return 0;
}

static int send_text(const char *host, const char *port, const char *text) {
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_DGRAM}, *ai;
	if (getaddrinfo(host, port, &hints, &ai) != 0) {
		fprintf(stderr, "tally: cannot resolve %s\n", host);
		return 1;
	}
	int fd = socket(ai->ai_family, ai->ai_socktype, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		perror("tally: connect");
		return 1;
	}
	struct timeval timeout = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
	char buf[32];
	send(fd, text, strlen(text), 0);
	ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
	if (n <= 0) {
		perror("tally: recv");
		return 1;
	}
	buf[n] = 0;
	if (atoi(buf) != count_words(text)) {
		fprintf(stderr, "tally: server counted %s", buf);
		return 1;
	}
	fputs(buf, stdout);
	return 0;
}

int main(int argc, char **argv) {
	if (argc == 3 && strcmp(argv[1], "serve") == 0)
		return serve(argv[2]);
	if (argc == 5 && strcmp(argv[1], "send") == 0)
		return send_text(argv[2], argv[3], argv[4]);
	fprintf(stderr, "usage: tally serve PORT | tally send HOST PORT TEXT\n");
	return 2;
}
