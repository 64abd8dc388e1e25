/* Two processes: a client that waits for the answer of a server that has not accepted its
 * connection, and the server, which waits (before its first accept) for a word the client
 * writes to a pipe only after it has that answer. Neither can go on.
 *
 *   accept_pipe_pair tcp        loopback TCP
 *   accept_pipe_pair unix       a unix stream socket
 *   accept_pipe_pair unix-full  a unix stream socket with a backlog of 0: the client's first
 *                               connection fills the queue, and its second connect sleeps
 *                               until the server accepts
 *
 * The server is the child; it alone holds the listening socket. Prints the child's pid. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int full = argc > 1 && strcmp(argv[1], "unix-full") == 0;
    int unix_mode = full || (argc > 1 && strcmp(argv[1], "unix") == 0);
    int go[2];
    if (pipe(go) != 0) return 1;
    struct sockaddr_in in = {0};
    struct sockaddr_un un = {0};
    struct sockaddr *addr;
    socklen_t len;
    int listener = socket(unix_mode ? AF_UNIX : AF_INET, SOCK_STREAM, 0);
    if (unix_mode) {
        un.sun_family = AF_UNIX;
        snprintf(un.sun_path, sizeof un.sun_path, "/tmp/accept_pipe_pair.%d.sock", getpid());
        unlink(un.sun_path);
        addr = (struct sockaddr *)&un;
        len = sizeof un;
    } else {
        in.sin_family = AF_INET;
        in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr = (struct sockaddr *)&in;
        len = sizeof in;
    }
    if (bind(listener, addr, len) != 0 || listen(listener, full ? 0 : 8) != 0) return 1;
    if (!unix_mode && getsockname(listener, addr, &len) != 0) return 1;
    pid_t child = fork();
    if (child == 0) { /* the server */
        close(go[1]);
        char word[8];
        if (read(go[0], word, sizeof word) <= 0) return 1; /* waits for the client's word */
        int conn = accept(listener, NULL, NULL);
        char req[64];
        ssize_t n = read(conn, req, sizeof req);
        if (n > 0) write(conn, req, (size_t)n);
        return 0;
    }
    close(listener);
    close(go[0]);
    printf("%d\n", (int)child);
    fflush(stdout);
    int s = socket(unix_mode ? AF_UNIX : AF_INET, SOCK_STREAM, 0);
    if (connect(s, addr, len) != 0) return 1;
    if (full) { /* the queue is full now: this connect waits for an accept */
        s = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(s, addr, len) != 0) return 1;
    }
    write(s, "hello", 5);
    char answer[64];
    read(s, answer, sizeof answer); /* waits for the answer */
    write(go[1], "go", 2);           /* only then lets the server go on */
    waitpid(child, NULL, 0);
    if (unix_mode) unlink(un.sun_path);
    return 0;
}
