#include "core/wake.h"

#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void on_readable(uv_poll_t *p, int status, int events)
{
    (void)events;
    sb_wake_t *w = p->data;
    uint64_t n;
    if (status == 0) {
        ssize_t r;
        do
            r = read(w->_fd, &n, sizeof(n)); /* resets the counter; EAGAIN when a wake-up was spurious */
        while (r < 0 && errno == EINTR);
    }
    /* Taken before the callback looks for work: a send from now on writes again.  An exchange, not a
     * store, so that it acquires what the senders that found the flag set had written. */
    atomic_exchange_explicit(&w->_armed, 0, memory_order_acq_rel);
    w->_cb(w);
}

int sb_wake_init(uv_loop_t *loop, sb_wake_t *w, sb_wake_cb cb)
{
    w->_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->_fd < 0)
        return -errno;
    atomic_init(&w->_armed, 0);
    w->_cb = cb;
    w->_closed = NULL;
    int r = uv_poll_init(loop, &w->_poll, w->_fd);
    if (r != 0) {
        close(w->_fd);
        w->_fd = -1;
        return r;
    }
    w->_poll.data = w;
    /* libuv checks a poll's arguments by assertion: with these, starting cannot fail. */
    uv_poll_start(&w->_poll, UV_READABLE, on_readable);
    return 0;
}

void sb_wake_send(sb_wake_t *w)
{
    if (atomic_exchange_explicit(&w->_armed, 1, memory_order_acq_rel) != 0)
        return; /* a wake-up is on its way and the loop has not looked yet */
    static const uint64_t one = 1;
    ssize_t r;
    do
        r = write(w->_fd, &one, sizeof(one));
    while (r < 0 && errno == EINTR);
    /* EAGAIN only if the counter were near 2^64: it is nonzero then, so the loop wakes anyway. */
}

static void on_poll_closed(uv_handle_t *h)
{
    sb_wake_t *w = h->data;
    close(w->_fd);
    w->_fd = -1;
    if (w->_closed != NULL)
        w->_closed(w);
}

void sb_wake_close(sb_wake_t *w, sb_wake_closed_cb closed)
{
    w->_closed = closed;
    uv_close((uv_handle_t *)&w->_poll, on_poll_closed);
}

uv_handle_t *sb_wake_handle(sb_wake_t *w)
{
    return (uv_handle_t *)&w->_poll;
}
