#include "core/error.h"

#include <uv.h>

const char *sb_strerror(int code)
{
    switch (code) {
#define SB_ERR_CASE(name, value, text)                                                                       \
    case value:                                                                                              \
        return text;
        SB_ERRORS(SB_ERR_CASE)
#undef SB_ERR_CASE
    default: {
        /* uv_strerror leaks a string for codes libuv does not know; the _r form does not. */
        static _Thread_local char buf[128];
        return uv_strerror_r(code, buf, sizeof(buf));
    }
    }
}

const char *sb_errname(int code)
{
    switch (code) {
#define SB_ERR_NAME(name, value, text)                                                                       \
    case value:                                                                                              \
        return #name;
        SB_ERRORS(SB_ERR_NAME)
#undef SB_ERR_NAME
    default: {
        static _Thread_local char buf[64];
        return uv_err_name_r(code, buf, sizeof(buf));
    }
    }
}
