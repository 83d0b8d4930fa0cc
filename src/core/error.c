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
    default:
        return uv_strerror(code);
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
    default:
        return uv_err_name(code);
    }
}
