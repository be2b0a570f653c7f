#include "reply_parser.h"

#include <string.h>

enum reply_status
reply_parser_line(struct smtp_reply *reply, const char *line, size_t len)
{
	int code;

	if (len < 3 || len + 2 > REPLY_LINE_MAX)
		return REPLY_BAD;
	if (line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' || line[2] < '0' || line[2] > '9')
		return REPLY_BAD;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return REPLY_BAD;
	for (size_t i = 0; i < len; i++)
		if (line[i] == '\0' || line[i] == '\r' || line[i] == '\n')
			return REPLY_BAD;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (reply->lines > 0 && code != reply->code)
		return REPLY_BAD;
	if (reply->lines >= REPLY_LINES_MAX || reply->len + len + 2 > sizeof(reply->text))
		return REPLY_BAD;
	reply->code = code;
	reply->lines++;
	memcpy(reply->text + reply->len, line, len);
	reply->len += len;
	reply->text[reply->len++] = '\r';
	reply->text[reply->len++] = '\n';
	return len > 3 && line[3] == '-' ? REPLY_MORE : REPLY_DONE;
}

size_t
reply_first_line(const struct smtp_reply *reply, const char **start)
{
	const char *crlf = memchr(reply->text, '\r', reply->len);

	*start = reply->text;
	return crlf ? (size_t)(crlf - reply->text) : reply->len;
}
