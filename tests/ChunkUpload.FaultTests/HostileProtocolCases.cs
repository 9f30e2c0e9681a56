using System.Globalization;
using System.Text;
using static ChunkUpload.FaultTests.Infrastructure.RequestBuilder;

namespace ChunkUpload.FaultTests;

/// <summary>
/// Uploads of the other protocols the suite creates before it runs: <paramref name="Completed"/> is the id of a
/// complete upload of <paramref name="CompletedLength"/> bytes (made with /append), <paramref name="Rufh"/> an IETF upload
/// resource (/rufh/{id}, 100 bytes, nothing stored), <paramref name="Google"/> a Google-style session (/upload/{name}, 100
/// bytes, nothing stored).
/// </summary>
public sealed record ProtocolTargets(string Completed, long CompletedLength, string Rufh, string Google);

/// <summary>
/// Issue 11: numbers no looser than the query string's, repeated parameters and file parts, bounded multipart fields,
/// the longest legal values (a deep folder tree) accepted, unsatisfiable download ranges; and each protocol's own
/// hostile inputs (bad numbers, overlong and path-like ids, conflicting headers, ranges past the length), each
/// answered in the protocol's own refusal shape.
/// </summary>
public static partial class HostileCases
{
    private static void AddIssue11(List<HostileCase> cases, string marker, ProtocolTargets targets, Func<string, string> id)
    {
        byte[] chunk = Body(1000);

        // ---------------------------------------------------------------- resumable.js / flow.js (/upload)
        void Add(string name, Expect expect, byte[] request) => cases.Add(new HostileCase("strict", name, expect, request));
        byte[] Octet(List<(string Name, string Value)> query, byte[] body) => Request("POST", "/upload?" + Query(query), body, "application/octet-stream");
        byte[] Form(string target, IEnumerable<Part> parts) => Request("POST", target, Parts(parts), MultipartType);
        static IEnumerable<Part> AsParts(IEnumerable<(string Name, string Value)> fields) => fields.Select(f => new Part(f.Name, Encoding.UTF8.GetBytes(f.Value)));

        (string Field, string Value)[] loose = [("resumableChunkNumber", "1\0"), ("resumableTotalSize", "2500\0"), ("resumableChunkSize", "1000 "),
            ("resumableCurrentChunkSize", " 1000"), ("resumableTotalChunks", "+2"), ("resumableChunkNumber", "1\t")];
        foreach (var (field, value) in loose)
        {
            Add($"{field}='{Short(value)}' (multipart field)", Expect.Problem, Form("/upload", [.. AsParts(ValidParameters(id("strict")).With(field, value)), File("file", chunk)]));
            Add($"{field}='{Short(value)}' (query, octet)", Expect.Problem, Octet(ValidParameters(id("strict")).With(field, value), chunk));
        }

        Add("test GET with resumableChunkNumber '1\\0'", Expect.Problem, Request("GET", "/upload?" + Query(ValidParameters(id("strict")).With("resumableChunkNumber", "1\0"))));
        Add("two file parts", Expect.Problem, Form("/upload", [.. AsParts(ValidParameters(id("twofiles"))), File("file", chunk), File("file", Body(1000, (byte)'y'))]));
        {
            string first = id("twoids");
            Add("resumableIdentifier twice before the file part, different values, nothing in the query", Expect.Problem,
                Form("/upload", [.. AsParts(ValidParameters(first)), new Part("resumableIdentifier", Encoding.UTF8.GetBytes(first + "-other")), File("file", chunk)]));
            Add("resumableIdentifier again after the file part with another value", Expect.Problem,
                Form("/upload", [.. AsParts(ValidParameters(id("lateid"))), File("file", chunk), new Part("resumableIdentifier", "other"u8.ToArray())]));
            Add("resumableRelativePath only after the file part", Expect.Problem,
                Form("/upload", [.. AsParts(ValidParameters(id("lateonly")).With("resumableRelativePath", null)), File("file", chunk), new Part("resumableRelativePath", "a/b.bin"u8.ToArray())]));
        }

        IEnumerable<Part> Extra(int count, int size) =>
            Enumerable.Range(0, count).Select(i => new Part("extra" + i.ToString(CultureInfo.InvariantCulture), Body(size, (byte)'e')));
        Add("40 fields of the client's own before the file part", Expect.Problem, Form("/upload", [.. AsParts(ValidParameters(id("fields"))), .. Extra(40, 1), File("file", chunk)]));
        Add("4 fields of 10,000 bytes before the file part (over the total)", Expect.Problem, Form("/upload", [.. AsParts(ValidParameters(id("fields"))), .. Extra(4, 10_000), File("file", chunk)]));
        Add("a field of 30,000 bytes of the client's own", Expect.Problem, Form("/upload", [.. AsParts(ValidParameters(id("fields"))), .. Extra(1, 30_000), File("file", chunk)]));
        Add("resumableRelativePath field of 20,000 bytes", Expect.Problem,
            Form("/upload", [.. AsParts(ValidParameters(id("fields")).With("resumableRelativePath", new string('r', 20_000))), File("file", chunk)]));
        Add("16 fields of the client's own (a CSRF token and the like): accepted", Expect.Data,
            Form("/upload", [.. AsParts(ValidParameters(id("ownfields"))), .. Extra(16, 100), File("file", chunk)]));

        // A folder upload of a deep tree: 2,000 nested folders (4 KB, legal on Linux), URL-encoded in the query string.
        void Deep(string name, Expect expect, byte[] request) => cases.Add(new HostileCase("deep tree", name, expect, request));
        string deep = string.Concat(Enumerable.Repeat("d/", 2000)) + "file.bin";
        Deep("test GET with a relative path of 2,000 folders", Expect.Data, Request("GET", "/upload?" + Query(ValidParameters(id("deep")).With("resumableRelativePath", deep))));
        Deep("octet chunk with a relative path of 2,000 folders", Expect.Data, Octet(ValidParameters(id("deep")).With("resumableRelativePath", deep), chunk));
        Deep("multipart chunk with a relative path of 2,000 folders", Expect.Data,
            Form("/upload", [.. AsParts(ValidParameters(id("deep")).With("resumableRelativePath", deep)), File("file", chunk)]));
        {
            // Every value at its limit in 3-byte characters: 9 characters on the wire for each, about 57 KB of query.
            string wide = new('東', 255);
            string path = string.Concat(Enumerable.Repeat(wide + "/", 15)) + wide;
            string ident = id("wide");
            ident += new string('東', 1024 - ident.Length);
            var all = ValidParameters(ident).With("resumableFilename", new string('東', 1024)).With("resumableRelativePath", path);
            Deep("test GET with identifier, file name and path at their limits in CJK", Expect.Data, Request("GET", "/upload?" + Query(all)));
            Deep("octet chunk with identifier, file name and path at their limits in CJK", Expect.Data, Octet(all, chunk));
            Deep("multipart chunk with identifier, file name and path at their limits in CJK", Expect.Data, Form("/upload", [.. AsParts(all), File("file", chunk)]));
        }

        Deep("relative path of 4,097 characters (over the limit, under Kestrel's)", Expect.Problem,
            Octet(ValidParameters(id("deep")).With("resumableRelativePath", new string('p', 4097)), chunk));
        Deep("identifier of 60,000 characters (under Kestrel's request-line limit)", Expect.Problem,
            Request("GET", "/upload?" + Query(ValidParameters(new string('i', 60_000)))));

        // ---------------------------------------------------------------- downloads
        void Download(string name, string range) =>
            cases.Add(new HostileCase("download", name, Expect.Problem, Request("GET", "/files/" + Uri.EscapeDataString(targets.Completed), headers: ["Range: " + range])));
        long length = targets.CompletedLength;
        Download("Range: bytes=-0", "bytes=-0");
        Download($"Range: bytes={length}- (starts at the end)", $"bytes={length}-");
        Download("Range past the end", $"bytes={length + 100}-{length + 200}");

        AddRufh(cases, marker, targets);
        AddFineUploader(cases, marker);
        AddGoogle(cases, marker, targets, id);
        AddNginx(cases, marker, id);
        AddAppend(cases, marker, targets, id);
    }

    // ---------------------------------------------------------------- IETF draft (/rufh): problem+json
    private static void AddRufh(List<HostileCase> cases, string marker, ProtocolTargets targets)
    {
        const string Partial = "application/partial-upload";
        void Add(string name, Expect expect, byte[] request) => cases.Add(new HostileCase("rufh", name, expect, request));
        byte[] Create(byte[] body, params string[] headers) => Request("POST", "/rufh", body, "application/octet-stream", headers);
        byte[] Patch(string target, byte[] body, params string[] headers) => Request("PATCH", target, body, Partial, headers);
        byte[] ten = Body(10);

        foreach (string value in new[] { "-1", "abc", "1e3", "10.0", "+10", "1 0", "9223372036854775808", "1234567890123456" })
        {
            Add($"creation Upload-Length '{value}'", Expect.Problem, Create([], "Upload-Complete: ?0", "Upload-Length: " + value));
            Add($"PATCH Upload-Offset '{value}'", Expect.Problem, Patch(targets.Rufh, ten, "Upload-Complete: ?0", "Upload-Offset: " + value));
        }

        Add("creation with two different Upload-Length headers", Expect.Problem, Create([], "Upload-Complete: ?0", "Upload-Length: 10", "Upload-Length: 20"));
        foreach (string value in new[] { "maybe", "?2", "1", "?", "?1 ?0" })
            Add($"Upload-Complete '{value}'", Expect.Problem, Create(ten, "Upload-Complete: " + value));
        Add("complete creation whose 10 bytes disagree with Upload-Length 20", Expect.Problem, Create(ten, "Upload-Complete: ?1", "Upload-Length: 20"));
        Add("PATCH at the wrong offset", Expect.Problem, Patch(targets.Rufh, ten, "Upload-Complete: ?0", "Upload-Offset: 50"));
        Add("PATCH past the declared length (101 bytes of 100)", Expect.Problem, Patch(targets.Rufh, Body(101), "Upload-Complete: ?1", "Upload-Offset: 0"));
        Add("PATCH with two different Upload-Offset headers", Expect.Problem, Patch(targets.Rufh, ten, "Upload-Complete: ?0", "Upload-Offset: 0", "Upload-Offset: 10"));
        Add("PATCH /rufh/..%2F..%2Fsessions", Expect.Problem, Patch("/rufh/..%2F..%2Fsessions", ten, "Upload-Complete: ?0", "Upload-Offset: 0"));
        Add("PATCH /rufh/{traversal}", Expect.Problem, Patch("/rufh/" + Uri.EscapeDataString(TraversalValues(marker)[0]), ten, "Upload-Complete: ?0", "Upload-Offset: 0"));
        Add("PATCH /rufh/{2,000 chars}", Expect.Problem, Patch("/rufh/" + new string('r', 2000), ten, "Upload-Complete: ?0", "Upload-Offset: 0"));
        Add("GET /rufh/{unknown}", Expect.Problem, Request("GET", "/rufh/0123456789abcdef0123456789abcdef"));
        Add("creation with a malformed Upload-Metadata", Expect.Problem, Create([], "Upload-Complete: ?0", "Upload-Length: 10", "Upload-Metadata: filename !!!!"));
        foreach (string value in TraversalValues(marker).Take(2))
            Add($"creation with file name {Short(value)}", Expect.DataOrProblem,
                Create([], "Upload-Complete: ?0", "Upload-Length: 10", "Upload-Metadata: filename " + Convert.ToBase64String(Encoding.UTF8.GetBytes(value))));
    }

    // ---------------------------------------------------------------- Fine Uploader (/fineuploader): its JSON
    private static void AddFineUploader(List<HostileCase> cases, string marker)
    {
        void Add(string name, Expect expect, byte[] request) => cases.Add(new HostileCase("fineuploader", name, expect, request, Shape: Shape.FineUploader));
        byte[] chunk = Body(1000);

        // Part 1 of a 5,000-byte file in 1,000-byte parts, as Fine Uploader sends it.
        List<(string Name, string Value)> Part1(string uuid) =>
        [
            ("qquuid", uuid), ("qqfilename", "hostile.bin"), ("qqtotalfilesize", "5000"), ("qqpartindex", "1"),
            ("qqpartbyteoffset", "1000"), ("qqchunksize", "1000"), ("qqtotalparts", "5"),
        ];
        string Uuid() => Guid.NewGuid().ToString();
        byte[] Form(IEnumerable<Part> parts) => Request("POST", "/fineuploader", Parts(parts), MultipartType);
        static IEnumerable<Part> AsParts(IEnumerable<(string Name, string Value)> fields) => fields.Select(f => new Part(f.Name, Encoding.UTF8.GetBytes(f.Value)));

        (string Field, string Value)[] numbers = [("qqpartindex", "1\0"), ("qqtotalfilesize", "5000 "), ("qqchunksize", "+1000"), ("qqpartbyteoffset", "abc"),
            ("qqtotalparts", "-5"), ("qqtotalfilesize", "9223372036854775808"), ("qqpartindex", "1.0"), ("qqpartbyteoffset", "999")];
        foreach (var (field, value) in numbers)
            Add($"{field}='{Short(value)}' (multipart)", Expect.Problem, Form([.. AsParts(Part1(Uuid()).With(field, value)), File("qqfile", chunk)]));
        Add("qqpartindex='1\\0' (query, octet)", Expect.Problem,
            Request("POST", "/fineuploader?" + Query(Part1(Uuid()).With("qqpartindex", "1\0")), chunk, "application/octet-stream"));
        Add("two qqfile parts", Expect.Problem, Form([.. AsParts(Part1(Uuid())), File("qqfile", chunk), File("qqfile", Body(1000, (byte)'y'))]));
        Add("qquuid twice before the file part, different values", Expect.Problem, Form([.. AsParts(Part1(Uuid())), new Part("qquuid", Encoding.UTF8.GetBytes(Uuid())), File("qqfile", chunk)]));
        Add("qquuid again after the file part with another value", Expect.Problem, Form([.. AsParts(Part1(Uuid())), File("qqfile", chunk), new Part("qquuid", Encoding.UTF8.GetBytes(Uuid()))]));
        Add("40 fields of the client's own", Expect.Problem,
            Form([.. AsParts(Part1(Uuid())), .. Enumerable.Range(0, 40).Select(i => new Part("param" + i.ToString(CultureInfo.InvariantCulture), "v"u8.ToArray())), File("qqfile", chunk)]));
        Add("qquuid of 2,000 chars", Expect.Problem, Form([.. AsParts(Part1(new string('u', 2000))), File("qqfile", chunk)]));
        Add("qquuid with a NUL", Expect.Problem, Form([.. AsParts(Part1("a\0b")), File("qqfile", chunk)]));
        Add($"qquuid {Short(TraversalValues(marker)[0])}", Expect.DataOrProblem, Form([.. AsParts(Part1(TraversalValues(marker)[0])), File("qqfile", chunk)]));
        Add($"qqfilename {Short(TraversalValues(marker)[1])}", Expect.DataOrProblem, Form([.. AsParts(Part1(Uuid()).With("qqfilename", TraversalValues(marker)[1])), File("qqfile", chunk)]));
        Add("no qqfile part", Expect.Problem, Form([.. AsParts(Part1(Uuid()))]));
        Add("done with qqtotalparts 'abc'", Expect.Problem, Request("POST", "/fineuploader/done",
            Encoding.ASCII.GetBytes(Query([("qquuid", Uuid()), ("qqfilename", "f.bin"), ("qqtotalfilesize", "5000"), ("qqtotalparts", "abc")])), "application/x-www-form-urlencoded"));
        Add("done with qqtotalfilesize '5000 '", Expect.Problem, Request("POST", "/fineuploader/done",
            Encoding.ASCII.GetBytes(Query([("qquuid", Uuid()), ("qqfilename", "f.bin"), ("qqtotalfilesize", "5000 "), ("qqtotalparts", "5")])), "application/x-www-form-urlencoded"));
        Add("done for an upload never started", Expect.Problem, Request("POST", "/fineuploader/done",
            Encoding.ASCII.GetBytes(Query([("qquuid", Uuid()), ("qqfilename", "f.bin"), ("qqtotalfilesize", "5000"), ("qqtotalparts", "5")])), "application/x-www-form-urlencoded"));
    }

    // ---------------------------------------------------------------- Google-style (/upload/{name}): Google's JSON errors
    private static void AddGoogle(List<HostileCase> cases, string marker, ProtocolTargets targets, Func<string, string> id)
    {
        void Add(string name, Expect expect, byte[] request) => cases.Add(new HostileCase("google", name, expect, request, Shape: Shape.Google));
        byte[] Put(string target, byte[] body, params string[] headers) => Request("PUT", target, body, "application/octet-stream", headers);
        byte[] ten = Body(10);

        string[] ranges = ["bytes 0-9/abc", "bytes 9-0/10", "bytes 0-9/5", "bytes -1-9/10", "bytes 0-9/99999999999999999999", "bytes=0-9/10",
            "bytes 0-9/+10", "bytes 0-9/1 0", "bytes 0-9", "items 0-9/10", "bytes 0-9/-10"];
        foreach (string value in ranges)
            Add($"PUT Content-Range '{value}'", Expect.Problem, Put("/upload/" + id("google"), ten, "Content-Range: " + value));
        Add("PUT with two different Content-Range headers", Expect.Problem, Put("/upload/" + id("google"), ten, "Content-Range: bytes 0-9/10", "Content-Range: bytes 0-9/20"));
        Add("PUT whose 5 bytes disagree with Content-Range bytes 0-9/10", Expect.Problem, Put("/upload/" + id("google"), Body(5), "Content-Range: bytes 0-9/10"));
        Add("PUT past the session's total (bytes 0-199/100)", Expect.Problem, Put(targets.Google, Body(200), "Content-Range: bytes 0-199/100"));
        Add("PUT stating another total (bytes 0-9/200 on a 100-byte session)", Expect.Problem, Put(targets.Google, ten, "Content-Range: bytes 0-9/200"));
        foreach (string value in new[] { "abc", "-1", "+10", "10.5", "99999999999999999999" })
            Add($"initiation X-Upload-Content-Length '{value}'", Expect.Problem,
                Request("POST", "/upload/" + id("google") + "?uploadType=resumable", [], null, ["X-Upload-Content-Length: " + value]));
        Add("initiation with malformed JSON", Expect.Problem, Request("POST", "/upload/" + id("google") + "?uploadType=resumable", "{\"name\":"u8.ToArray(), "application/json"));
        Add("initiation with a JSON name that is a number", Expect.Problem, Request("POST", "/upload/" + id("google") + "?uploadType=resumable", "{\"name\":5}"u8.ToArray(), "application/json"));
        Add("initiation with 20 KB of JSON", Expect.Problem,
            Request("POST", "/upload/" + id("google") + "?uploadType=resumable", Encoding.UTF8.GetBytes("{\"name\":\"" + new string('n', 20_000) + "\"}"), "application/json"));
        Add("PUT /upload/{2,000 chars}", Expect.Problem, Put("/upload/" + new string('g', 2000), ten));
        // Kestrel refuses a NUL in the decoded path itself (400, no body) before routing.
        Add("PUT /upload/{name with a NUL}", Expect.Kestrel, Put("/upload/a%00b", ten));
        Add("PUT /upload/{traversal}", Expect.DataOrProblem, Put("/upload/" + Uri.EscapeDataString(TraversalValues(marker)[0]), ten));
    }

    // ---------------------------------------------------------------- nginx upload module (/nginx-upload): text lines
    private static void AddNginx(List<HostileCase> cases, string marker, Func<string, string> id)
    {
        void Add(string name, Expect expect, byte[] request) => cases.Add(new HostileCase("nginx", name, expect, request, Shape: Shape.Text));
        byte[] Segment(byte[] body, params string[] headers) => Request("POST", "/nginx-upload", body, "application/octet-stream", headers);
        const string Disposition = "Content-Disposition: attachment; filename=\"n.bin\"";
        byte[] ten = Body(10);

        Add("no Session-ID", Expect.Problem, Segment(ten, "X-Content-Range: bytes 0-9/10", Disposition));
        Add("Session-ID '../../x'", Expect.Problem, Segment(ten, "Session-ID: ../../" + marker, "X-Content-Range: bytes 0-9/10", Disposition));
        Add("Session-ID of 2,000 chars", Expect.Problem, Segment(ten, "Session-ID: " + new string('s', 2000), "X-Content-Range: bytes 0-9/10", Disposition));
        Add("two different Session-ID headers", Expect.Problem, Segment(ten, "Session-ID: " + id("nginx"), "Session-ID: " + id("nginx"), "X-Content-Range: bytes 0-9/10", Disposition));
        Add("Session-ID and X-Session-ID differ", Expect.Problem, Segment(ten, "Session-ID: " + id("nginx"), "X-Session-ID: " + id("nginx"), "X-Content-Range: bytes 0-9/10", Disposition));
        foreach (string value in new[] { "bytes 0-9/abc", "bytes 9-0/10", "bytes 0-99/10", "bytes 0-9/-10", "bytes 0-9/99999999999999999999", "bytes 0-9/+10", "bytes 0-9/1 0", "bytes 0-9" })
            Add($"X-Content-Range '{value}'", Expect.Problem, Segment(ten, "Session-ID: " + id("nginx"), "X-Content-Range: " + value, Disposition));
        Add("X-Content-Range bytes 0-9/10 with a 5-byte body", Expect.Problem, Segment(Body(5), "Session-ID: " + id("nginx"), "X-Content-Range: bytes 0-9/10", Disposition));
        Add("X-Content-Range and Content-Range differ", Expect.Problem,
            Segment(ten, "Session-ID: " + id("nginx"), "X-Content-Range: bytes 0-9/10", "Content-Range: bytes 0-9/20", Disposition));
        Add("a total over the server's limit", Expect.Problem, Segment(ten, "Session-ID: " + id("nginx"), "X-Content-Range: bytes 0-9/107374182401", Disposition));
        Add("no Content-Disposition", Expect.Problem, Segment(ten, "Session-ID: " + id("nginx"), "X-Content-Range: bytes 0-9/10"));
        Add("multipart body", Expect.Problem,
            Request("POST", "/nginx-upload", ten, MultipartType, ["Session-ID: " + id("nginx"), "X-Content-Range: bytes 0-9/10", Disposition]));
        Add($"file name {Short(TraversalValues(marker)[0])}", Expect.DataOrProblem,
            Segment(ten, "Session-ID: " + id("nginx"), "X-Content-Range: bytes 0-9/10", $"Content-Disposition: attachment; filename=\"{TraversalValues(marker)[0]}\""));
    }

    // ---------------------------------------------------------------- append (/append): text lines
    private static void AddAppend(List<HostileCase> cases, string marker, ProtocolTargets targets, Func<string, string> id)
    {
        void Add(string name, Expect expect, byte[] request) => cases.Add(new HostileCase("append", name, expect, request, Shape: Shape.Text));
        byte[] Post(byte[] body, params string[] headers) => Request("POST", "/append", body, "application/octet-stream", headers);
        byte[] ten = Body(10);

        Add("no X-File-Id", Expect.Problem, Post(ten, "X-Start-Byte: 0"));
        Add("X-File-Id '../../x'", Expect.Problem, Post(ten, "X-File-Id: ../../" + marker, "X-Start-Byte: 0"));
        Add("X-File-Id with a backslash", Expect.Problem, Post(ten, "X-File-Id: ..\\" + marker, "X-Start-Byte: 0"));
        Add("X-File-Id of 2,000 chars", Expect.Problem, Post(ten, "X-File-Id: " + new string('a', 2000), "X-Start-Byte: 0"));
        foreach (string value in new[] { "abc", "-1", "+0", "1e3", "0.0", "0 0", "99999999999999999999" })
            Add($"X-Start-Byte '{value}'", Expect.Problem, Post(ten, "X-File-Id: " + id("append"), "X-Start-Byte: " + value));
        foreach (string value in new[] { "abc", "-10", "+10", "99999999999999999999" })
            Add($"X-File-Size '{value}'", Expect.Problem, Post(ten, "X-File-Id: " + id("append"), "X-Start-Byte: 0", "X-File-Size: " + value));
        Add("X-Start-Byte 50 on a new upload", Expect.Problem, Post(ten, "X-File-Id: " + id("append"), "X-Start-Byte: 50"));
        Add("two different X-Start-Byte headers", Expect.Problem, Post(ten, "X-File-Id: " + id("append"), "X-Start-Byte: 0", "X-Start-Byte: 5"));
        Add("X-File-Size and Upload-Length differ", Expect.Problem, Post(ten, "X-File-Id: " + id("append"), "X-Start-Byte: 0", "X-File-Size: 10", "Upload-Length: 20"));
        Add("10 bytes with X-File-Size 5", Expect.Problem, Post(ten, "X-File-Id: " + id("append"), "X-Start-Byte: 0", "X-File-Size: 5"));
        Add("a finished upload appended to in the middle", Expect.Problem, Post(ten, "X-File-Id: " + targets.Completed, "X-Start-Byte: 3"));
        Add("status without X-File-Id", Expect.Problem, Request("GET", "/append/status"));
        Add("status of X-File-Id '../../x'", Expect.Problem, Request("GET", "/append/status", headers: ["X-File-Id: ../../" + marker]));
    }

    /// <summary>One multipart part; a file part carries a file name and a type.</summary>
    private sealed record Part(string Name, byte[] Value, bool IsFile = false);

    private static Part File(string name, byte[] data) => new(name, data, IsFile: true);

    private static byte[] Parts(IEnumerable<Part> parts)
    {
        using var body = new MemoryStream();
        void Write(string text) => body.Write(Encoding.UTF8.GetBytes(text));
        foreach (var part in parts)
        {
            Write(part.IsFile
                ? $"--{Boundary}\r\nContent-Disposition: form-data; name=\"{part.Name}\"; filename=\"blob\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                : $"--{Boundary}\r\nContent-Disposition: form-data; name=\"{part.Name}\"\r\n\r\n");
            body.Write(part.Value);
            Write("\r\n");
        }

        Write($"--{Boundary}--\r\n");
        return body.ToArray();
    }
}
