/* Error codes shared by every layer.
 *
 * Actions return 0 on success or a negative code: libuv's UV_E* codes pass through unchanged for
 * I/O, and Switchboard's own codes below (all below -10000, clear of errno and UV_E* values).
 * sb_strerror() names either kind. */
#ifndef SB_CORE_ERROR_H
#define SB_CORE_ERROR_H

#define SB_ERRORS(X)                                                                                         \
    X(SB_EINVAL, -10001, "invalid argument")                                                                 \
    X(SB_ENOMEM, -10002, "out of memory")                                                                    \
    X(SB_ECONFLICT, -10003, "version conflict")                                                              \
    X(SB_ENOTFOUND, -10004, "not found")                                                                     \
    X(SB_EDB, -10005, "database error")                                                                      \
    X(SB_EDBDOWN, -10006, "database unavailable")                                                            \
    X(SB_EUNKNOWN, -10007, "outcome unknown (connection lost before the reply)")                             \
    X(SB_EOVERLOAD, -10008, "overloaded")                                                                    \
    X(SB_ECODEC, -10009, "malformed encoding")                                                               \
    X(SB_EUTF8, -10010, "invalid utf-8")                                                                     \
    X(SB_ETOOBIG, -10011, "too large")                                                                       \
    X(SB_ESHUTDOWN, -10012, "shutting down")                                                                 \
    X(SB_ETIMEOUT, -10013, "timed out")                                                                      \
    X(SB_EREJECTED, -10014, "rejected by the domain")                                                        \
    X(SB_EPERM, -10015, "not permitted")                                                                     \
    X(SB_EEXIST, -10016, "already exists")                                                                   \
    X(SB_ECLUSTER, -10017, "embedded cluster error")

enum {
#define SB_ERR_ENUM(name, value, text) name = value,
    SB_ERRORS(SB_ERR_ENUM)
#undef SB_ERR_ENUM
};

/* A short, lowercase description of a Switchboard, libuv or errno code (negative).  Never NULL;
 * the text may live in a per-thread buffer that the next call on the same thread reuses. */
const char *sb_strerror(int code);

/* The symbolic name ("SB_ECONFLICT", "ECONNREFUSED"). Never NULL. */
const char *sb_errname(int code);

#endif
