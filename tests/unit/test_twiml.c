/* TwiML writer: nesting, optional attributes, escaping, misuse. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "providers/twiml.h"
#include "sbtest.h"

#define DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"

static void test_dial(void)
{
    sb_twiml_t t;
    sb_twiml_init(&t);
    sb_twiml_open(&t, "Dial", "timeout", "20", "callerId", NULL, "action", "https://x/a?b=1&c=2", NULL);
    sb_twiml_leaf(&t, "Client", "agent_42", NULL);
    sb_twiml_close(&t, "Dial");
    sb_twiml_leaf(&t, "Enqueue", "support", "waitUrl", "/hold", NULL);
    sb_twiml_leaf(&t, "Hangup", NULL, NULL);
    char *xml = NULL;
    size_t len = 0;
    if (!CHECK_EQ_INT(sb_twiml_finish(&t, &xml, &len), 0))
        return;
    CHECK_EQ_STR(xml, DECL "<Response><Dial timeout=\"20\" action=\"https://x/a?b=1&amp;c=2\">"
                           "<Client>agent_42</Client></Dial><Enqueue waitUrl=\"/hold\">support</Enqueue>"
                           "<Hangup/></Response>");
    CHECK_EQ_UINT(len, strlen(xml));
    free(xml);
}

static void test_escape(void)
{
    sb_buf_t b = SB_BUF_INIT;
    sb_twiml_escape(&b, "<a href=\"x\">'&'</a>\x01\t\n");
    CHECK_EQ_STR(b.data, "&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;\t\n");
    sb_buf_free(&b);
}

static void test_empty(void)
{
    sb_twiml_t t;
    sb_twiml_init(&t);
    char *xml = NULL;
    size_t len = 0;
    if (CHECK_EQ_INT(sb_twiml_finish(&t, &xml, &len), 0))
        CHECK_EQ_STR(xml, DECL "<Response></Response>");
    free(xml);
}

static void test_misuse(void)
{
    sb_twiml_t t;
    char *xml = NULL;
    size_t len = 0;
    sb_twiml_init(&t);
    sb_twiml_open(&t, "Dial", NULL);
    CHECK_EQ_INT(sb_twiml_finish(&t, &xml, &len), SB_EINVAL); /* left open */
    CHECK(xml == NULL);

    sb_twiml_init(&t);
    sb_twiml_open(&t, "Dial", NULL);
    sb_twiml_close(&t, "Conference"); /* wrong element */
    CHECK_EQ_INT(sb_twiml_finish(&t, &xml, &len), SB_EINVAL);

    sb_twiml_init(&t);
    for (int i = 0; i < SB_TWIML_MAX_DEPTH + 1; i++)
        sb_twiml_open(&t, "Dial", NULL);
    CHECK_EQ_INT(sb_twiml_finish(&t, &xml, &len), SB_EINVAL); /* too deep */
    CHECK(xml == NULL);
}

int main(void)
{
    SBTEST_RUN(test_dial);
    SBTEST_RUN(test_escape);
    SBTEST_RUN(test_empty);
    SBTEST_RUN(test_misuse);
    return sbtest_summary();
}
