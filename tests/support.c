#include "support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

void test_make_temp_dir(char *out, size_t cap, const char *prefix)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(out, cap, "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix);
    if (!mkdtemp(out)) {
        perror("mkdtemp");
        abort();
    }
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void test_remove_dir(const char *path)
{
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int test_run_tool(const char *const argv[])
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", DUET_TOOLS_DIR, argv[0]);
    pid_t pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid == 0) {
        if (!getenv("DUET_TEST_VERBOSE")) {
            int fd = open("/dev/null", O_WRONLY);
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        execv(path, (char *const *)argv);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0) {
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *slurp_fd(int fd)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    ssize_t got;
    while ((got = read(fd, buf + n, cap - n - 1)) > 0) {
        n += (size_t)got;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    buf[n] = '\0';
    return buf;
}

int test_run_tool_capture(const char *const argv[], char **out, char **err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", DUET_TOOLS_DIR, argv[0]);
    char out_name[] = "/tmp/duet-test-out-XXXXXX", err_name[] = "/tmp/duet-test-err-XXXXXX";
    int out_fd = mkstemp(out_name), err_fd = mkstemp(err_name);
    unlink(out_name);
    unlink(err_name);
    pid_t pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid == 0) {
        dup2(out_fd, STDOUT_FILENO);
        dup2(err_fd, STDERR_FILENO);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    lseek(out_fd, 0, SEEK_SET);
    lseek(err_fd, 0, SEEK_SET);
    *out = slurp_fd(out_fd);
    if (err) {
        *err = slurp_fd(err_fd);
    }
    close(out_fd);
    close(err_fd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        abort();
    }
    close(fd);
    return ntohs(sa.sin_port);
}

char *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    fclose(f);
    buf[n] = '\0';
    if (len) {
        *len = n;
    }
    return buf;
}

void test_make_lab(const char *dir, const char *const names[])
{
    const char *init[] = {"duet-certs", "init", dir, NULL};
    if (test_run_tool(init) != 0) {
        fprintf(stderr, "duet-certs init %s failed\n", dir);
        abort();
    }
    for (size_t i = 0; names[i]; i++) {
        const char *issue[] = {"duet-certs", "issue", dir, names[i], NULL};
        if (test_run_tool(issue) != 0) {
            fprintf(stderr, "duet-certs issue %s %s failed\n", dir, names[i]);
            abort();
        }
    }
}

void test_spawn_tool(const char *const argv[], test_process *p)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", DUET_TOOLS_DIR, argv[0]);
    snprintf(p->err_path, sizeof p->err_path, "/tmp/duet-test-spawn-XXXXXX");
    int err_fd = mkstemp(p->err_path);
    if (err_fd < 0) {
        abort();
    }
    pid_t pid = fork();
    if (pid < 0) {
        abort();
    }
    if (pid == 0) {
        int null_fd = open("/dev/null", O_WRONLY);
        dup2(null_fd, STDOUT_FILENO);
        dup2(err_fd, STDERR_FILENO);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(err_fd);
    p->pid = pid;
}

static int decode_status(int status)
{
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

int test_process_wait(test_process *p, int timeout_ms)
{
    for (int waited = 0;; waited += 10) {
        int status;
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid) {
            p->pid = 0;
            return decode_status(status);
        }
        if (r < 0 || p->pid == 0) {
            return -1;
        }
        if (waited >= timeout_ms) {
            return -2;
        }
        usleep(10 * 1000);
    }
}

int test_process_stop(test_process *p, int sig, int timeout_ms)
{
    int rc = -1;
    if (p->pid > 0) {
        kill(p->pid, sig);
        rc = test_process_wait(p, timeout_ms);
        if (rc == -2) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, NULL, 0);
            p->pid = 0;
            rc = -1;
        }
    }
    return rc;
}

void test_process_forget(test_process *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        p->pid = 0;
    }
    if (p->err_path[0]) {
        unlink(p->err_path);
        p->err_path[0] = '\0';
    }
}

char *test_process_stderr(const test_process *p)
{
    return test_read_file(p->err_path, NULL);
}

size_t test_http(int port, const char *request, char *out, size_t cap, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "test_http: cannot connect to port %d\n", port);
        abort();
    }
    size_t n = strlen(request);
    if (write(fd, request, n) != (ssize_t)n) {
        abort();
    }
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    size_t got = 0;
    out[0] = '\0';
    while (got + 1 < cap) {
        ssize_t r = read(fd, out + got, cap - 1 - got);
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
        out[got] = '\0';
        char *end = strstr(out, "\r\n\r\n");
        char *cl = strstr(out, "Content-Length: ");
        if (end && cl && cl < end &&
            (size_t)(out + got - (end + 4)) >= strtoul(cl + 16, NULL, 10)) {
            break;
        }
    }
    close(fd);
    return got;
}

int test_http_status(const char *answer)
{
    int status;
    return sscanf(answer, "HTTP/1.1 %d", &status) == 1 ? status : -1;
}

/* Whether something listens on 127.0.0.1:port (test_http aborts on a refused connect). */
static bool listening_on(int port)
{
    FILE *p = fopen("/proc/net/tcp", "r");
    char line[512], hex[16];
    snprintf(hex, sizeof hex, ":%04X ", port);
    bool found = false;
    while (p && fgets(line, sizeof line, p)) {
        if (strstr(line, hex) && strstr(line, " 0A ")) {
            found = true;
        }
    }
    if (p) {
        fclose(p);
    }
    return found;
}

bool test_wait_gateway_ready(test_process *gateway, int port, int timeout_ms, char *why, size_t cap)
{
    static char buf[16384];
    buf[0] = '\0';
    for (int waited = 0; waited < timeout_ms; waited += 100) {
        usleep(100 * 1000);
        if (test_process_wait(gateway, 0) != -2) {
            char *err = test_process_stderr(gateway);
            snprintf(why, cap, "the gateway exited: %s", err ? err : "");
            free(err);
            return false;
        }
        if (!listening_on(port)) {
            continue;
        }
        test_http(port, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n", buf, sizeof buf, 5000);
        if (test_http_status(buf) == 200 && strstr(buf, "\"state\":\"ready\"")) {
            return true;
        }
    }
    snprintf(why, cap, "no ready worker after %d ms: %s", timeout_ms, buf);
    return false;
}

int test_run_program(const char *const argv[], char **out)
{
    char name[] = "/tmp/duet-test-prog-XXXXXX";
    int fd = mkstemp(name);
    if (fd < 0) {
        return -1;
    }
    unlink(name);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd);
        return -1;
    }
    if (pid == 0) {
        int null_fd = open("/dev/null", O_RDONLY);
        dup2(null_fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        execvp(argv[0], (char *const *)argv);
        dprintf(STDERR_FILENO, "cannot run %s\n", argv[0]);
        _exit(127);
    }
    int status;
    int rc = waitpid(pid, &status, 0) == pid ? decode_status(status) : -1;
    if (out) {
        lseek(fd, 0, SEEK_SET);
        *out = slurp_fd(fd);
    }
    close(fd);
    return rc;
}

bool test_wait_listening(int port, int timeout_ms)
{
    for (int waited = 0; !listening_on(port); waited += 20) {
        if (waited >= timeout_ms) {
            return false;
        }
        usleep(20 * 1000);
    }
    return true;
}
