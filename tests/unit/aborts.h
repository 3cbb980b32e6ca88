/* aborts: whether code refuses by aborting (a startup error, such as a bad registration), run
 * in a child process so that the test goes on. Include after cmocka.h. */
#ifndef WERKLAB_TEST_ABORTS_H
#define WERKLAB_TEST_ABORTS_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs run(arg) in a child; true when the child died of SIGABRT. Its stderr (the expected
 * messages) is kept out of the test log. */
static bool aborts(void (*run)(const void *arg), const void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr))
            _exit(3);
        run(arg);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

#endif
