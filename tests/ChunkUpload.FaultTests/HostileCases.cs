using System.Text;
using static ChunkUpload.FaultTests.Infrastructure.RequestBuilder;

namespace ChunkUpload.FaultTests;

/// <summary>How a hostile request may be answered.</summary>
public enum Expect
{
    /// <summary>A 4xx application/problem+json with <c>code</c> and <c>detail</c> from the server's own code.</summary>
    Problem,

    /// <summary>
    /// A path-like or odd name in an otherwise valid request: names are data, never paths (README), so a 2xx is
    /// correct; a 4xx problem is too. Either way nothing may appear outside the storage root.
    /// </summary>
    DataOrProblem,

    /// <summary>Refused by Kestrel before the application (request line, header limits, framing): a bare 400/413/414/431 is fine.</summary>
    Kestrel,

    /// <summary>A legal request (the longest values a real client sends): it must be accepted, 2xx.</summary>
    Data,

    /// <summary>A body that ends early (the client shut its side down): a 4xx problem, or the connection closed without an answer.</summary>
    ProblemOrCut,

    /// <summary>
    /// A URL that names no endpoint once Kestrel has normalised it (dot segments): routing's 404/405, which
    /// UseStatusCodePages turns into a problem+json without a catalog <c>code</c>, or a bare Kestrel 400.
    /// </summary>
    Routing,
}

/// <summary>The refusal shape of the protocol a request speaks: problem+json, or the protocol's own.</summary>
public enum Shape
{
    /// <summary>application/problem+json with <c>code</c> and <c>detail</c> (resumable.js, tus, the IETF draft, /uploads, /files).</summary>
    Problem,

    /// <summary>Fine Uploader's JSON: <c>success: false</c>, <c>error</c> (shown to the user) and <c>code</c>.</summary>
    FineUploader,

    /// <summary>Google's JSON error: <c>error.code</c> the status, <c>error.message</c>, <c>error.errors[0].reason</c> the code.</summary>
    Google,

    /// <summary>text/plain, one line <c>code: detail</c> (nginx upload module, append).</summary>
    Text,
}

/// <summary>One crafted request. <paramref name="KnownBug"/>: the server answers it wrongly today (excluded unless CHUNKUPLOAD_HOSTILE_KNOWN_BUGS=1).
/// <paramref name="Stall"/>: the request stops part-way and the connection stays open (a slow sender the server must cut off).</summary>
public sealed record HostileCase(string Category, string Name, Expect Expect, byte[] Request, bool HalfClose = false, string? KnownBug = null, bool Stall = false,
    Shape Shape = Shape.Problem);

/// <summary>
/// tus uploads the suite creates before it runs, for the cases that need one: <paramref name="Upload"/> is 100 bytes long
/// with nothing stored, <paramref name="Deferred"/> has a deferred length, <paramref name="Partial"/> is a partial upload.
/// Each is a path, /tus/{id}.
/// </summary>
public sealed record TusTargets(string Upload, string Deferred, string Partial);

/// <summary>The crafted requests (issue 5): every category the issue lists, against the real server over raw sockets.</summary>
public static partial class HostileCases
{
    private const string Boundary = "----HostileBoundary7MA4YWxkTrZu0gW";
    private static readonly string MultipartType = "multipart/form-data; boundary=" + Boundary;

    /// <summary>Path-traversal and absolute-path values, each carrying <paramref name="marker"/> in the name it would create.</summary>
    public static string[] TraversalValues(string marker) =>
    [
        $"../../../../../../../../../../tmp/{marker}-dotdot",
        $"/tmp/{marker}-absolute",
        $"..\\..\\..\\..\\..\\..\\tmp\\{marker}-backslash",
        $"....//....//....//....//tmp/{marker}-dots4",
        $"%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2ftmp%2f{marker}-percent",
        $"C:\\Windows\\Temp\\{marker}-drive",
        $"\\\\evil-host\\share\\{marker}-unc",
        $"file:///tmp/{marker}-uri",
        $"../{marker}-parent",
    ];

    public static List<HostileCase> All(string marker, TusTargets tus, ProtocolTargets targets)
    {
        var cases = new List<HostileCase>();
        int n = 0;
        string Id(string what) => $"hostile-{marker}-{what}-{++n}";

        void Add(string category, string name, Expect expect, byte[] request, bool halfClose = false, string? knownBug = null) =>
            cases.Add(new HostileCase(category, name, expect, request, halfClose, knownBug));

        byte[] Octet(List<(string Name, string Value)> query, byte[] body, string? contentLength = null, IEnumerable<string>? headers = null) =>
            Request("POST", "/upload?" + Query(query), body, "application/octet-stream", headers, contentLength);

        // Multipart as flow.js sends it (parameters only as fields) unless a query is given (resumable.js repeats them).
        byte[] Form(IEnumerable<Field> fields, byte[]? file, string? query = null, string? contentType = null, string fileField = "file", string fileName = "blob") =>
            Request("POST", "/upload" + (query is null ? "" : "?" + query), Multipart(Boundary, fields, file, fileField, fileName), contentType ?? MultipartType);

        byte[] Chunk1 = Body(1000);

        // 1. Path traversal and absolute paths in every name field, in the query (octet) and in multipart fields.
        string[] fieldNames = ["resumableIdentifier", "resumableFilename", "resumableRelativePath"];
        foreach (string field in fieldNames)
        {
            foreach (string value in TraversalValues(marker))
            {
                var p = ValidParameters(Id("trav")).With(field, value);
                Add("traversal", $"{field}={Short(value)} (query, octet)", Expect.DataOrProblem, Octet(p, Chunk1));
                var q = ValidParameters(Id("trav")).With(field, value);
                Add("traversal", $"{field}={Short(value)} (multipart fields)", Expect.DataOrProblem, Form(Fields(q), Chunk1));
            }
        }

        foreach (string value in TraversalValues(marker).Take(3))
            Add("traversal", $"file part filename={Short(value)}", Expect.DataOrProblem, Form(Fields(ValidParameters(Id("travfile"))), Chunk1, fileName: value));

        string travId = TraversalValues(marker)[0];
        Add("traversal", "GET /uploads/{traversal identifier}", Expect.DataOrProblem, Request("GET", "/uploads/" + Uri.EscapeDataString(travId)));
        Add("traversal", "GET /files/{traversal identifier} (not complete)", Expect.Problem, Request("GET", "/files/" + Uri.EscapeDataString(travId)));
        Add("traversal", "GET /uploads/..%2F..%2F..%2Fetc%2Fpasswd", Expect.Problem, Request("GET", "/uploads/..%2F..%2F..%2Fetc%2Fpasswd"));
        Add("traversal", "GET /files/%2Fetc%2Fpasswd", Expect.Problem, Request("GET", "/files/%2Fetc%2Fpasswd"));
        Add("traversal", "DELETE /uploads/..%2F..%2Fsessions", Expect.Problem, Request("DELETE", "/uploads/..%2F..%2Fsessions"));
        Add("traversal", "DELETE /uploads/{traversal identifier}", Expect.DataOrProblem, Request("DELETE", "/uploads/" + Uri.EscapeDataString(TraversalValues(marker)[1])));
        Add("traversal", "GET /files/../../../../etc/passwd (dot segments in the path)", Expect.Routing, Request("GET", "/files/../../../../etc/passwd"));
        Add("traversal", "GET /files/%2e%2e/%2e%2e/etc/passwd (encoded dot segments)", Expect.Routing, Request("GET", "/files/%2e%2e/%2e%2e/etc/passwd"));
        Add("traversal", "GET test with an absolute-path identifier", Expect.DataOrProblem,
            Request("GET", "/upload?" + Query(ValidParameters($"/etc/{marker}-probe"))));

        // 2. NUL and control characters.
        Add("control", "identifier with %00 (query, octet)", Expect.Problem, Octet(ValidParameters(Id("nul")).With("resumableIdentifier", "a\0b"), Chunk1));
        Add("control", "identifier with a raw NUL byte (multipart)", Expect.Problem, Form(Fields(ValidParameters("x").With("resumableIdentifier", "a\0b")), Chunk1));
        Add("control", "file name with U+0001 (query)", Expect.Problem, Octet(ValidParameters(Id("ctl")).With("resumableFilename", "x\u0001y.bin"), Chunk1));
        Add("control", "file name with ESC (multipart)", Expect.Problem, Form(Fields(ValidParameters(Id("ctl")).With("resumableFilename", "x\u001b[31my.bin")), Chunk1));
        Add("control", "relative path with LF (query)", Expect.Problem, Octet(ValidParameters(Id("ctl")).With("resumableRelativePath", "a\nb/c.bin"), Chunk1));
        Add("control", "relative path with CR (multipart)", Expect.Problem, Form(Fields(ValidParameters(Id("ctl")).With("resumableRelativePath", "a\rb.bin")), Chunk1));
        Add("control", "identifier with DEL (query)", Expect.Problem, Octet(ValidParameters(Id("ctl")).With("resumableIdentifier", "del\u007f"), Chunk1));
        Add("control", "identifier with U+0085 NEL (query)", Expect.Problem, Octet(ValidParameters(Id("ctl")).With("resumableIdentifier", "nel\u0085"), Chunk1));
        Add("control", "file name with NUL in a test GET", Expect.Problem, Request("GET", "/upload?" + Query(ValidParameters(Id("ctl")).With("resumableFilename", "\0"))));
        Add("control", "invalid UTF-8 bytes in a multipart field", Expect.Problem,
            Form(Fields(ValidParameters(Id("utf")).With("resumableIdentifier", null)).Append(new Field("resumableIdentifier", [0xFF, 0xFE, 0x41])), Chunk1));
        Add("control", "UTF-8-encoded lone surrogate in a multipart field", Expect.Problem,
            Form(Fields(ValidParameters(Id("utf")).With("resumableFilename", null)).Append(new Field("resumableFilename", [0xED, 0xA0, 0x80])), Chunk1));
        Add("control", "invalid UTF-8 %FF in the query (decoded to U+FFFD)", Expect.DataOrProblem,
            Request("POST", "/upload?" + Query(ValidParameters(Id("utf")).With("resumableIdentifier", null)) + "&resumableIdentifier=bad%FF" + marker, Chunk1, "application/octet-stream"));
        Add("control", "NUL in a request header", Expect.Kestrel, Request("GET", "/healthz", headers: ["X-Evil: a\0b"]));
        Add("control", "raw NUL in the request target", Expect.Kestrel, Request("GET", "/upload?resumableIdentifier=a\0b"));
        Add("control", "bare CR in a header value", Expect.Kestrel, Request("GET", "/healthz", headers: ["X-Evil: a\rInjected: 1"]));
        Add("control", "NUL in a multipart field name", Expect.Problem,
            Form(Fields(ValidParameters(Id("ctl")).With("resumableIdentifier", null)).Append(new Field("resumableIdentifier\0", "x")), Chunk1));

        // 3. 100,000-character values.
        string huge = new('a', 100_000);
        Add("100k", "identifier of 100,000 chars in the query", Expect.Kestrel, Octet(ValidParameters(Id("big")).With("resumableIdentifier", huge), Chunk1));
        Add("100k", "file name of 100,000 chars in a test GET", Expect.Kestrel, Request("GET", "/upload?" + Query(ValidParameters(Id("big")).With("resumableFilename", huge))));
        Add("100k", "identifier of 100,000 chars (multipart field)", Expect.Problem, Form(Fields(ValidParameters("x").With("resumableIdentifier", huge)), Chunk1));
        Add("100k", "file name of 100,000 chars (multipart field)", Expect.Problem, Form(Fields(ValidParameters(Id("big")).With("resumableFilename", huge)), Chunk1));
        Add("100k", "relative path of 100,000 chars (multipart field)", Expect.Problem, Form(Fields(ValidParameters(Id("big")).With("resumableRelativePath", huge)), Chunk1));
        Add("100k", "chunk number of 100,000 digits (multipart field)", Expect.Problem, Form(Fields(ValidParameters(Id("big")).With("resumableChunkNumber", new string('9', 100_000))), Chunk1));
        Add("100k", "multipart field name of 100,000 chars", Expect.Problem, Form(Fields(ValidParameters(Id("big"))).Prepend(new Field(huge, "x")), Chunk1));
        Add("100k", "file part filename of 100,000 chars", Expect.Problem, Form(Fields(ValidParameters(Id("big"))), Chunk1, fileName: huge));
        Add("100k", "identifier of 1,025 chars (multipart, just over the limit)", Expect.Problem, Form(Fields(ValidParameters(new string('i', 1025))), Chunk1));
        Add("100k", "file name of 1,025 chars (query)", Expect.Problem, Octet(ValidParameters(Id("big")).With("resumableFilename", new string('f', 1025)), Chunk1));
        Add("100k", "GET /uploads/{100,000 chars}", Expect.Kestrel, Request("GET", "/uploads/" + huge));
        Add("100k", "GET /uploads/{2,000 chars}", Expect.Problem, Request("GET", "/uploads/" + new string('u', 2000)));

        // 4. Numbers: negative, zero, overflowing, non-numeric.
        (string Field, string Value)[] numbers =
        [
            ("resumableChunkNumber", "-1"), ("resumableChunkNumber", "0"), ("resumableChunkNumber", "2147483648"),
            ("resumableChunkNumber", "99999999999999999999999"), ("resumableChunkNumber", "abc"), ("resumableChunkNumber", "1e3"),
            ("resumableChunkNumber", "0x1"), ("resumableChunkNumber", " 1"), ("resumableChunkNumber", "+1"), ("resumableChunkNumber", "1.0"),
            ("resumableChunkNumber", "\u0661"), ("resumableChunkNumber", ""),
            ("resumableTotalSize", "-2500"), ("resumableTotalSize", "0"), ("resumableTotalSize", "9223372036854775808"),
            ("resumableTotalSize", "2500.5"), ("resumableTotalSize", "NaN"),
            ("resumableChunkSize", "0"), ("resumableChunkSize", "-1000"), ("resumableChunkSize", "9223372036854775807"), ("resumableChunkSize", "1k"),
            ("resumableCurrentChunkSize", "-1"), ("resumableCurrentChunkSize", "0"), ("resumableCurrentChunkSize", "999999999999999999999"),
            ("resumableCurrentChunkSize", "1001"), ("resumableCurrentChunkSize", "x"),
            ("resumableTotalChunks", "0"), ("resumableTotalChunks", "-2"), ("resumableTotalChunks", "5"), ("resumableTotalChunks", "2147483648"),
            ("resumableTotalChunks", "two"),
        ];
        for (int i = 0; i < numbers.Length; i++)
        {
            var (field, value) = numbers[i];
            var p = ValidParameters(Id("num")).With(field, value);
            if (i % 2 == 0)
                Add("numbers", $"{field}='{Short(value)}' (multipart)", Expect.Problem, Form(Fields(p), Chunk1));
            else
                Add("numbers", $"{field}='{Short(value)}' (query, octet)", Expect.Problem, Octet(p, Chunk1));
        }

        Add("numbers", "test GET with chunk number 0", Expect.Problem, Request("GET", "/upload?" + Query(ValidParameters(Id("num")).With("resumableChunkNumber", "0"))));
        Add("numbers", "test GET with chunk number -5", Expect.Problem, Request("GET", "/upload?" + Query(ValidParameters(Id("num")).With("resumableChunkNumber", "-5"))));
        Add("numbers", "test GET with total size 18446744073709551616", Expect.Problem, Request("GET", "/upload?" + Query(ValidParameters(Id("num")).With("resumableTotalSize", "18446744073709551616"))));
        Add("numbers", "test GET with chunk size 0", Expect.Problem, Request("GET", "/upload?" + Query(ValidParameters(Id("num")).With("resumableChunkSize", "0"))));

        // 5. Chunk numbers out of range.
        Add("range", "chunk 3 of 2 (multipart)", Expect.Problem, Form(Fields(ValidParameters(Id("rng"), 2).With("resumableChunkNumber", "3")), Body(1500)));
        Add("range", "chunk 2147483647 of 2 (query, octet)", Expect.Problem, Octet(ValidParameters(Id("rng")).With("resumableChunkNumber", "2147483647"), Chunk1));
        Add("range", "test GET for chunk 99 of 2", Expect.Problem, Request("GET", "/upload?" + Query(ValidParameters(Id("rng")).With("resumableChunkNumber", "99"))));
        Add("range", "chunk 2 declared as 1,000 bytes (the last chunk is 1,500)", Expect.Problem,
            Form(Fields(ValidParameters(Id("rng"), 2).With("resumableCurrentChunkSize", "1000")), Body(1000)));

        // 6. Lengths that disagree with the body.
        Add("length", "octet body 999 bytes, currentChunkSize 1000", Expect.Problem, Octet(ValidParameters(Id("len")), Body(999)));
        Add("length", "octet body 1001 bytes, currentChunkSize 1000", Expect.Problem, Octet(ValidParameters(Id("len")), Body(1001)));
        Add("length", "octet body 1 byte without currentChunkSize", Expect.Problem, Octet(ValidParameters(Id("len")).With("resumableCurrentChunkSize", null), Body(1)));
        Add("length", "octet Content-Length 0", Expect.Problem, Octet(ValidParameters(Id("len")), []));
        Add("length", "Content-Length 1000, 500 bytes sent, then the client stops sending", Expect.ProblemOrCut,
            Octet(ValidParameters(Id("len")), Body(500), contentLength: "1000"), halfClose: true);
        Add("length", "Content-Length 500, 1000 bytes sent", Expect.Problem, Octet(ValidParameters(Id("len")), Body(1000), contentLength: "500"));
        Add("length", "multipart file part 999 bytes, currentChunkSize 1000", Expect.Problem, Form(Fields(ValidParameters(Id("len"))), Body(999)));
        Add("length", "multipart file part 1001 bytes, currentChunkSize 1000", Expect.Problem, Form(Fields(ValidParameters(Id("len"))), Body(1001)));
        {
            byte[] body = Multipart(Boundary, Fields(ValidParameters(Id("len"))), Chunk1);
            Add("length", "multipart Content-Length 100 bytes short of the body", Expect.Problem,
                Request("POST", "/upload", body, MultipartType, contentLength: (body.Length - 100).ToString(System.Globalization.CultureInfo.InvariantCulture)));
            Add("length", "multipart Content-Length 100 bytes over the body, then the client stops sending", Expect.ProblemOrCut,
                Request("POST", "/upload", body, MultipartType, contentLength: (body.Length + 100).ToString(System.Globalization.CultureInfo.InvariantCulture)), halfClose: true);
        }

        Add("length", "chunked transfer encoding, 999-byte body", Expect.Problem,
            Request("POST", "/upload?" + Query(ValidParameters(Id("len"))), [.. Encoding.ASCII.GetBytes("3e7\r\n"), .. Body(999), .. "\r\n0\r\n\r\n"u8],
                "application/octet-stream", ["Transfer-Encoding: chunked"], contentLength: ""));
        Add("length", "chunked transfer encoding with a bad chunk-size line", Expect.Problem,
            Request("POST", "/upload?" + Query(ValidParameters(Id("len"))), "zz\r\nxxxx\r\n0\r\n\r\n"u8.ToArray(),
                "application/octet-stream", ["Transfer-Encoding: chunked"], contentLength: ""));
        cases.Add(new HostileCase("length", "slow sender: Content-Length 1000, 100 bytes, then silence (body data-rate limit)", Expect.ProblemOrCut,
            Octet(ValidParameters(Id("slow")), Body(100), contentLength: "1000"), Stall: true));
        Add("length", "Content-Length: abc", Expect.Kestrel, Octet(ValidParameters(Id("len")), Chunk1, contentLength: "abc"));
        Add("length", "Content-Length: -1", Expect.Kestrel, Octet(ValidParameters(Id("len")), Chunk1, contentLength: "-1"));
        Add("length", "two different Content-Length headers", Expect.Kestrel, Octet(ValidParameters(Id("len")), Chunk1, headers: ["Content-Length: 999"]));

        // 7. Declared sizes over the limits.
        Add("limits", "total size 100 GiB + 1 (multipart)", Expect.Problem,
            Form(Fields(ValidParameters(Id("lim")).With("resumableTotalSize", "107374182401").With("resumableTotalChunks", "107374182")), Chunk1));
        Add("limits", "total size 9223372036854775807 in a test GET", Expect.Problem,
            Request("GET", "/upload?" + Query(ValidParameters(Id("lim")).With("resumableTotalSize", "9223372036854775807").With("resumableTotalChunks", null))));
        Add("limits", "chunk size 64 MiB + 1", Expect.Problem,
            Octet(ValidParameters(Id("lim")).With("resumableChunkSize", "67108865").With("resumableTotalSize", "134217730").With("resumableTotalChunks", "1").With("resumableCurrentChunkSize", null), Chunk1));
        Add("limits", "2,000,000 chunks of 1,000 bytes (over the chunk count limit)", Expect.Problem,
            Octet(ValidParameters(Id("lim")).With("resumableTotalSize", "2000000000").With("resumableTotalChunks", "2000000"), Chunk1));
        Add("limits", "Content-Length 200,000,000 (over the body limit), no body sent", Expect.Problem,
            Octet(ValidParameters(Id("lim")), [], contentLength: "200000000"));

        // 8. Malformed and truncated multipart.
        byte[] valid = Multipart(Boundary, Fields(ValidParameters(Id("mp"))), Chunk1);
        Add("multipart", "multipart/form-data without a boundary", Expect.Problem, Request("POST", "/upload", valid, "multipart/form-data"));
        Add("multipart", "empty boundary", Expect.Problem, Request("POST", "/upload", valid, "multipart/form-data; boundary="));
        Add("multipart", "boundary of 250 characters", Expect.Problem, Request("POST", "/upload", valid, "multipart/form-data; boundary=" + new string('b', 250)));
        Add("multipart", "unterminated quoted boundary", Expect.Problem, Request("POST", "/upload", valid, "multipart/form-data; boundary=\"" + Boundary));
        Add("multipart", "body framed with another boundary", Expect.Problem, Request("POST", "/upload", Multipart("other-boundary", Fields(ValidParameters(Id("mp"))), Chunk1), MultipartType));
        Add("multipart", "part without Content-Disposition", Expect.Problem,
            Request("POST", "/upload", Encoding.ASCII.GetBytes($"--{Boundary}\r\nContent-Type: text/plain\r\n\r\nvalue\r\n--{Boundary}--\r\n"), MultipartType));
        Add("multipart", "Content-Disposition: attachment", Expect.Problem,
            Request("POST", "/upload", Encoding.ASCII.GetBytes($"--{Boundary}\r\nContent-Disposition: attachment; name=\"file\"; filename=\"a\"\r\n\r\nvalue\r\n--{Boundary}--\r\n"), MultipartType));
        Add("multipart", "part headers over 16 KB", Expect.Problem,
            Request("POST", "/upload", Encoding.ASCII.GetBytes($"--{Boundary}\r\nContent-Disposition: form-data; name=\"x\"\r\nX-Pad: {new string('p', 20_000)}\r\n\r\nv\r\n--{Boundary}--\r\n"), MultipartType));
        Add("multipart", "part with 40 headers", Expect.Problem,
            Request("POST", "/upload", Encoding.ASCII.GetBytes($"--{Boundary}\r\nContent-Disposition: form-data; name=\"x\"\r\n{string.Concat(Enumerable.Range(0, 40).Select(i => $"X-H{i}: v\r\n"))}\r\nv\r\n--{Boundary}--\r\n"), MultipartType));
        Add("multipart", "truncated inside the file part", Expect.Problem, Request("POST", "/upload", valid[..(valid.Length - 600)], MultipartType));
        Add("multipart", "truncated inside a part's headers", Expect.Problem, Request("POST", "/upload", valid[..60], MultipartType));
        Add("multipart", "no closing boundary after the file part", Expect.Problem,
            Request("POST", "/upload", Multipart(Boundary, Fields(ValidParameters(Id("mp"))), Chunk1, close: false)[..^2], MultipartType));
        Add("multipart", "empty body", Expect.Problem, Request("POST", "/upload", [], MultipartType));
        Add("multipart", "garbage body", Expect.Problem, Request("POST", "/upload", "hello, this is not multipart"u8.ToArray(), MultipartType));
        Add("multipart", "another file part before 'file'", Expect.Problem,
            Request("POST", "/upload", Multipart(Boundary, Fields(ValidParameters(Id("mp"))), Chunk1, fileField: "other"), MultipartType));
        Add("multipart", "resumableIdentifier sent as a file part", Expect.Problem,
            Request("POST", "/upload", Multipart(Boundary, [], "id"u8.ToArray(), fileField: "resumableIdentifier"), MultipartType));

        // 9. Missing file part.
        Add("file part", "fields only, no file part", Expect.Problem, Form(Fields(ValidParameters(Id("nofile"))), null));
        Add("file part", "fields only, parameters also in the query", Expect.Problem, Form(Fields(ValidParameters(Id("nofile"))), null, Query(ValidParameters(Id("nofile")))));
        Add("file part", "file part named 'File'", Expect.Problem, Form(Fields(ValidParameters(Id("nofile"))), Chunk1, fileField: "File"));
        Add("file part", "file part before the fields, no parameters in the query", Expect.Problem,
            Request("POST", "/upload", [.. Multipart(Boundary, [], Chunk1, close: false), .. Multipart(Boundary, Fields(ValidParameters(Id("nofile"))), null)], MultipartType));
        Add("file part", "file part only, no parameters anywhere", Expect.Problem, Form([], Chunk1));

        // 10. Duplicated fields with different values.
        {
            string id = Id("dup");
            Add("duplicates", "identifier in the query differs from the field", Expect.Problem, Form(Fields(ValidParameters(id)), Chunk1, Query(ValidParameters(id + "-other"))));
            Add("duplicates", "chunk number twice in the query (1 and 2)", Expect.Problem,
                Request("POST", "/upload?" + Query(ValidParameters(Id("dup"))) + "&resumableChunkNumber=2", Chunk1, "application/octet-stream"));
            Add("duplicates", "chunk number twice as fields (1 and 2)", Expect.Problem, Form(Fields(ValidParameters(Id("dup"))).Append(new Field("resumableChunkNumber", "2")), Chunk1));
            Add("duplicates", "total size 2500 in the query, 2501 in the field", Expect.Problem,
                Form(Fields(ValidParameters(id).With("resumableTotalSize", "2501")), Chunk1, Query(ValidParameters(id))));
            Add("duplicates", "test GET with two identifiers", Expect.Problem, Request("GET", "/upload?" + Query(ValidParameters(Id("dup"))) + "&resumableIdentifier=other"));
            Add("duplicates", "file name twice as fields", Expect.Problem, Form(Fields(ValidParameters(Id("dup"))).Append(new Field("resumableFilename", "other.bin")), Chunk1));
        }

        // 11. Wrong content types. Anything that is not multipart/form-data is a raw (octet) chunk: flow.js sends octet
        // chunks typed as the file (PROTOCOLS.md 3.3), so a type filter would refuse real uploads with 415.
        Add("content type", "form-urlencoded body with the parameters, none in the query", Expect.Problem,
            Request("POST", "/upload", Encoding.ASCII.GetBytes(Query(ValidParameters(Id("ct"))) + "&file=" + new string('x', 1000)), "application/x-www-form-urlencoded"));
        Add("content type", "JSON body with the parameters", Expect.Problem,
            Request("POST", "/upload", Encoding.ASCII.GetBytes("{\"resumableIdentifier\":\"a\",\"resumableChunkNumber\":1}"), "application/json"));
        Add("content type", "multipart/mixed body, parameters only in its fields", Expect.Problem,
            Request("POST", "/upload", valid, "multipart/mixed; boundary=" + Boundary));
        Add("content type", "text/plain with a multipart body, parameters in the query", Expect.Problem,
            Request("POST", "/upload?" + Query(ValidParameters(Id("ct"))), valid, "text/plain"));
        Add("content type", "flow.js octet chunk sent with the file's type (video/mp4), otherwise valid", Expect.DataOrProblem,
            Request("POST", "/upload?" + Query(ValidParameters(Id("ct"))), Chunk1, "video/mp4"));
        Add("content type", "no Content-Type, multipart body, parameters in the query", Expect.Problem,
            Request("POST", "/upload?" + Query(ValidParameters(Id("ct"))), valid));
        Add("content type", "multipart/form-data;;;; (no parameters)", Expect.Problem, Request("POST", "/upload", valid, "multipart/form-data;;;;"));
        Add("content type", "two boundary parameters, body uses neither", Expect.Problem,
            Request("POST", "/upload", Multipart("third", Fields(ValidParameters(Id("ct"))), Chunk1), "multipart/form-data; boundary=first; boundary=second"));

        // 12. Oversized headers and request lines (Kestrel's limits).
        // The header limits fit the longest legal values (Hosting/RequestLimits.cs: about 135 KB in all with the defaults).
        Add("headers", "one header of 300,000 chars", Expect.Kestrel, Request("GET", "/healthz", headers: ["X-Huge: " + new string('h', 300_000)]));
        Add("headers", "150 headers", Expect.Kestrel, Request("GET", "/healthz", headers: Enumerable.Range(0, 150).Select(i => $"X-H{i}: v")));
        Add("headers", "90 headers of 2 KB (over the total)", Expect.Kestrel,
            Request("POST", "/upload?" + Query(ValidParameters(Id("hdr"))), Chunk1, "application/octet-stream", Enumerable.Range(0, 90).Select(i => $"X-P{i}: {new string('p', 2000)}")));
        Add("headers", "Content-Type of 50,000 chars", Expect.Kestrel, Request("POST", "/upload", valid, "multipart/form-data; boundary=" + new string('c', 50_000)));
        Add("headers", "request path of 10,000 chars", Expect.Kestrel, Request("GET", "/" + new string('p', 10_000)));
        Add("headers", "malformed request line", Expect.Kestrel, "HELLO\r\n\r\n"u8.ToArray());
        Add("headers", "HTTP/1.1 request without Host", Expect.Kestrel, "GET /upload HTTP/1.1\r\nConnection: close\r\n\r\n"u8.ToArray());
        Add("headers", "header line without a colon", Expect.Kestrel, Request("GET", "/healthz", headers: ["ThisIsNotAHeader"]));

        AddTus(cases, marker, tus);
        AddIssue11(cases, marker, targets, Id);
        return cases;
    }

    // 13. tus 1.0.0 (/tus): hostile numbers, metadata, concatenations, checksums and method overrides.
    private static void AddTus(List<HostileCase> cases, string marker, TusTargets tus)
    {
        const string Tus = "Tus-Resumable: 1.0.0";
        const string Octets = "application/offset+octet-stream";
        void Add(string name, Expect expect, byte[] request) => cases.Add(new HostileCase("tus", name, expect, request));
        byte[] Create(params string[] headers) => Request("POST", "/tus", null, null, [Tus, .. headers]);
        byte[] Patch(string target, byte[] body, string? contentType, params string[] headers) => Request("PATCH", target, body, contentType, headers);
        string B64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));
        byte[] ten = Body(10);

        string[] numbers = ["-1", "abc", "1e3", "9223372036854775808", "99999999999999999999999", "0x10", "+5", ""];
        foreach (string value in numbers)
        {
            Add($"creation Upload-Length '{value}'", Expect.Problem, Create($"Upload-Length: {value}"));
            Add($"PATCH Upload-Offset '{value}'", Expect.Problem, Patch(tus.Upload, ten, Octets, Tus, $"Upload-Offset: {value}"));
        }

        foreach (string value in new[] { "-1", "1e3", "9223372036854775808" })
            Add($"PATCH of a deferred upload with Upload-Length '{value}'", Expect.Problem, Patch(tus.Deferred, ten, Octets, Tus, "Upload-Offset: 0", $"Upload-Length: {value}"));
        Add("creation with two different Upload-Length headers", Expect.Problem, Create("Upload-Length: 10", "Upload-Length: 20"));
        Add("PATCH with two different Upload-Offset headers", Expect.Problem, Patch(tus.Upload, ten, Octets, Tus, "Upload-Offset: 0", "Upload-Offset: 10"));
        Add("creation with Upload-Length and Upload-Defer-Length", Expect.Problem, Create("Upload-Length: 10", "Upload-Defer-Length: 1"));
        Add("creation without a length", Expect.Problem, Create());
        Add("creation with Upload-Defer-Length: 2", Expect.Problem, Create("Upload-Defer-Length: 2"));
        Add("creation of 100 GiB + 1 (over Tus-Max-Size)", Expect.Problem, Create("Upload-Length: 107374182401"));
        Add("creation without Tus-Resumable", Expect.Problem, Request("POST", "/tus", null, null, ["Upload-Length: 10"]));
        Add("creation with Tus-Resumable: 0.2.2", Expect.Problem, Request("POST", "/tus", null, null, ["Tus-Resumable: 0.2.2", "Upload-Length: 10"]));

        string[] metadata =
        [
            ",filename " + B64("a.bin"), "filename YQ==,,filetype Yg==", "my key YQ==", "filename YW Jj", "filename !!!!", "filename YQ=",
            "filename " + Convert.ToBase64String([0xFF, 0xFE, 0xFD]), "filename YQ==,filename Yg==", "filename " + B64("a\0b.bin"),
            "filename " + B64(new string('n', 2000)), "padding " + B64(new string('p', 40_000)),
        ];
        foreach (string value in metadata)
            Add($"Upload-Metadata '{Short(value)}'", Expect.Problem, Create("Upload-Length: 10", "Upload-Metadata: " + value));
        Add("Upload-Metadata key beyond ASCII (raw UTF-8 bytes)", Expect.Kestrel,
            [.. Encoding.ASCII.GetBytes($"POST /tus HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{Tus}\r\nUpload-Length: 10\r\nContent-Length: 0\r\nUpload-Metadata: cl"),
             .. "\u00e9"u8.ToArray(), .. " YQ==\r\n\r\n"u8.ToArray()]);
        foreach (string value in TraversalValues(marker).Take(3))
            Add($"creation with file name {Short(value)}", Expect.DataOrProblem, Create("Upload-Length: 10", "Upload-Metadata: filename " + B64(value)));

        string partialId = tus.Partial[(tus.Partial.LastIndexOf('/') + 1)..];
        string[] concats =
        [
            "final;/tus/0123456789abcdef0123456789abcdef", $"final;http://other.example{tus.Partial}", $"final;../tus/{partialId}",
            $"final;/tus/../tus/{partialId}", $"final;/files/{partialId}", $"final;{tus.Partial} {tus.Partial}", $"final;{tus.Upload}",
            "final;", "final", "partial;x", $"final;{tus.Partial}%00",
        ];
        foreach (string value in concats)
            Add($"Upload-Concat '{Short(value)}'", Expect.Problem, Create("Upload-Concat: " + value));
        Add("final with an Upload-Length", Expect.Problem, Create("Upload-Length: 10", $"Upload-Concat: final;{tus.Partial}"));

        Add("PATCH at the wrong offset", Expect.Problem, Patch(tus.Upload, ten, Octets, Tus, "Upload-Offset: 50"));
        Add("PATCH typed application/octet-stream", Expect.Problem, Patch(tus.Upload, ten, "application/octet-stream", Tus, "Upload-Offset: 0"));
        Add("PATCH without Content-Type", Expect.Problem, Patch(tus.Upload, ten, null, Tus, "Upload-Offset: 0"));
        Add("PATCH past the declared length (101 bytes of 100)", Expect.Problem, Patch(tus.Upload, Body(101), Octets, Tus, "Upload-Offset: 0"));
        Add("PATCH with another Upload-Length", Expect.Problem, Patch(tus.Upload, ten, Octets, Tus, "Upload-Offset: 0", "Upload-Length: 200"));
        Add("PATCH without Tus-Resumable", Expect.Problem, Patch(tus.Upload, ten, Octets, "Upload-Offset: 0"));
        Add("PATCH of an unknown upload", Expect.Problem, Patch("/tus/0123456789abcdef0123456789abcdef", ten, Octets, Tus, "Upload-Offset: 0"));
        Add("PATCH /tus/..%2F..%2Fsessions", Expect.Problem, Patch("/tus/..%2F..%2Fsessions", ten, Octets, Tus, "Upload-Offset: 0"));
        Add("PATCH /tus/{2,000 chars}", Expect.Problem, Patch("/tus/" + new string('t', 2000), ten, Octets, Tus, "Upload-Offset: 0"));
        Add("DELETE of an unknown upload", Expect.Problem, Request("DELETE", "/tus/0123456789abcdef0123456789abcdef", null, null, [Tus]));

        string[] checksums = ["crc32 AAAAAA==", "sha1", "sha1 !!!", "sha256 2jmj7l5rSw0yVb/vlWAYkK/YBwk=", "sha1:2jmj7l5rSw0yVb/vlWAYkK/YBwk=", "sha1 2jmj7l5rSw0yVb/vlWAYkK/YBwk="];
        foreach (string value in checksums)
            Add($"Upload-Checksum '{value}'", Expect.Problem, Patch(tus.Upload, ten, Octets, Tus, "Upload-Offset: 0", "Upload-Checksum: " + value));
        Add("two different Upload-Checksum headers", Expect.Problem,
            Patch(tus.Upload, ten, Octets, Tus, "Upload-Offset: 0", "Upload-Checksum: sha1 2jmj7l5rSw0yVb/vlWAYkK/YBwk=", "Upload-Checksum: md5 1B2M2Y8AsgTpgAmY7PhCfg=="));
        byte[] chunked = [.. "a\r\n"u8.ToArray(), .. ten, .. "\r\n0\r\n"u8.ToArray()];
        Add("chunked PATCH announcing an Upload-Checksum trailer and sending none", Expect.Problem,
            Request("PATCH", tus.Upload, [.. chunked, .. "\r\n"u8.ToArray()], Octets, [Tus, "Upload-Offset: 0", "Transfer-Encoding: chunked", "Trailer: Upload-Checksum"], contentLength: ""));
        Add("chunked PATCH with an unknown algorithm in the trailer", Expect.Problem,
            Request("PATCH", tus.Upload, [.. chunked, .. "Upload-Checksum: crc32 AAAAAA==\r\n\r\n"u8.ToArray()], Octets, [Tus, "Upload-Offset: 0", "Transfer-Encoding: chunked", "Trailer: Upload-Checksum"], contentLength: ""));
        Add("chunked PATCH with a mismatching trailer", Expect.Problem,
            Request("PATCH", tus.Upload, [.. chunked, .. "Upload-Checksum: sha1 2jmj7l5rSw0yVb/vlWAYkK/YBwk=\r\n\r\n"u8.ToArray()], Octets, [Tus, "Upload-Offset: 0", "Transfer-Encoding: chunked", "Trailer: Upload-Checksum"], contentLength: ""));

        foreach (string method in new[] { "TRACE", "GET", "PUT", "POST", "CONNECT" })
            Add($"X-HTTP-Method-Override: {method}", Expect.Problem, Request("POST", tus.Upload, ten, Octets, [Tus, "Upload-Offset: 0", "X-HTTP-Method-Override: " + method]));
        Add("POST to an upload URL without X-HTTP-Method-Override", Expect.Problem, Request("POST", tus.Upload, ten, Octets, [Tus, "Upload-Offset: 0"]));
    }

    private static string Short(string value) => value.Length <= 48 ? Escape(value) : Escape(value[..45]) + "...";

    private static string Escape(string value) =>
        string.Concat(value.Select(c => char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString()));
}
