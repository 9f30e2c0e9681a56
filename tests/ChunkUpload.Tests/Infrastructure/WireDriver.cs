using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;

namespace ChunkUpload.Tests.Infrastructure;

/// <summary>The protocols a <see cref="WireDriver"/> speaks.</summary>
public enum Wire
{
    Resumable,
    Tus,
    Ietf,
    FineUploader,
    Google,
    Nginx,
    Append,
}

/// <summary>
/// One protocol's requests for a file sent in two halves, as its client sends them, for tests that hold every protocol
/// to the same rule (access control, say). Answers are returned as they come (the caller disposes them), so refusals
/// can be checked in the protocol's own shape with <see cref="Refusals"/>.
/// </summary>
public abstract class WireDriver
{
    public static TheoryData<Wire> All => [.. Enum.GetValues<Wire>()];

    public static WireDriver For(Wire wire) => wire switch
    {
        Wire.Resumable => new ResumableDriver(),
        Wire.Tus => new TusDriver(),
        Wire.Ietf => new IetfDriver(),
        Wire.FineUploader => new FineUploaderDriver(),
        Wire.Google => new GoogleDriver(),
        Wire.Nginx => new NginxDriver(),
        _ => new AppendDriver(),
    };

    /// <summary>
    /// Starts an upload of <paramref name="data"/> (an even length) and sends its first half. <paramref name="id"/> names
    /// it where the client names uploads; tus and the IETF draft let the server name it (the id comes from Location).
    /// </summary>
    public abstract Task<(HttpResponseMessage Response, string Id)> StartAsync(HttpClient http, string id, byte[] data);

    /// <summary>Sends the second half, which completes the file (Fine Uploader's completion request included).</summary>
    public abstract Task<HttpResponseMessage> WriteRestAsync(HttpClient http, string id, byte[] data);

    /// <summary>The protocol's own question "what do you have of this upload?" (GET /uploads/{id} where it has none).</summary>
    public virtual Task<HttpResponseMessage> StatusAsync(HttpClient http, string id, byte[] data) => http.GetAsync(UploadsPath(id));

    /// <summary>The protocol's own delete (DELETE /uploads/{id} where it has none).</summary>
    public virtual Task<HttpResponseMessage> DeleteAsync(HttpClient http, string id) => http.DeleteAsync(UploadsPath(id));

    /// <summary>A resuming client: asks where the upload stands, then sends the rest. The first refusal is returned.</summary>
    public async Task<HttpResponseMessage> ResumeAsync(HttpClient http, string id, byte[] data)
    {
        var status = await StatusAsync(http, id, data);
        if (!Accepted(status))
            return status;
        status.Dispose();
        return await WriteRestAsync(http, id, data);
    }

    /// <summary>Whether the protocol's client takes the answer as success (Google's 308 is "go on").</summary>
    public virtual bool Accepted(HttpResponseMessage response) => response.IsSuccessStatusCode;

    /// <summary>Asserts that the protocol's client takes the answer as success, showing the body when it does not.</summary>
    public async Task AssertAcceptedAsync(HttpResponseMessage response, string what)
    {
        if (!Accepted(response))
            Assert.Fail($"{GetType().Name}: {what} was answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
    }

    protected static string UploadsPath(string id) => "/uploads/" + Uri.EscapeDataString(id);

    protected static int Half(byte[] data) => data.Length / 2;

    protected static string Text(long value) => value.ToString(CultureInfo.InvariantCulture);

    private sealed class ResumableDriver : WireDriver
    {
        public override async Task<(HttpResponseMessage, string)> StartAsync(HttpClient http, string id, byte[] data) =>
            (await new UploadClient(http).PostChunkAsync(FileOf(id, data), 1), id);

        public override Task<HttpResponseMessage> WriteRestAsync(HttpClient http, string id, byte[] data) =>
            new UploadClient(http).PostChunkAsync(FileOf(id, data), 2);

        // The test GET for the chunk still missing: 204 (upload it) while the upload is there.
        public override Task<HttpResponseMessage> StatusAsync(HttpClient http, string id, byte[] data) =>
            new UploadClient(http).TestChunkAsync(FileOf(id, data), 2);

        private static TestFile FileOf(string id, byte[] data) => new(id, "file.bin", data, Half(data));
    }

    private sealed class TusDriver : WireDriver
    {
        public override async Task<(HttpResponseMessage, string)> StartAsync(HttpClient http, string id, byte[] data)
        {
            var tus = new TusClient(http);
            var created = await tus.SendAsync(HttpMethod.Post, "/tus", headers: [("Upload-Length", Text(data.Length))]);
            if (created.StatusCode != HttpStatusCode.Created)
                return (created, "");
            string url = created.Headers.Location!.OriginalString;
            created.Dispose();
            return (await Patch(tus, TusClient.IdOf(url), data, 0), TusClient.IdOf(url));
        }

        public override Task<HttpResponseMessage> WriteRestAsync(HttpClient http, string id, byte[] data) => Patch(new TusClient(http), id, data, Half(data));

        public override Task<HttpResponseMessage> StatusAsync(HttpClient http, string id, byte[] data) =>
            new TusClient(http).SendAsync(HttpMethod.Head, Url(id));

        public override Task<HttpResponseMessage> DeleteAsync(HttpClient http, string id) => new TusClient(http).SendAsync(HttpMethod.Delete, Url(id));

        private static Task<HttpResponseMessage> Patch(TusClient tus, string id, byte[] data, int offset)
        {
            var content = new ByteArrayContent(data, offset, Half(data));
            content.Headers.ContentType = new MediaTypeHeaderValue(TusClient.OffsetOctetStream);
            return tus.SendAsync(HttpMethod.Patch, Url(id), content, [("Upload-Offset", Text(offset))]);
        }

        private static string Url(string id) => "/tus/" + Uri.EscapeDataString(id);
    }

    private sealed class IetfDriver : WireDriver
    {
        public override async Task<(HttpResponseMessage, string)> StartAsync(HttpClient http, string id, byte[] data)
        {
            var response = await http.SendAsync(Rufh.Create(null, "?0", data[..Half(data)], data.Length));
            return (response, response.Headers.Location is { } location ? Uri.UnescapeDataString(Rufh.IdOf(location.OriginalString)) : "");
        }

        public override Task<HttpResponseMessage> WriteRestAsync(HttpClient http, string id, byte[] data) =>
            http.SendAsync(Rufh.Patch(Url(id), null, Half(data), "?1", data[Half(data)..]));

        public override Task<HttpResponseMessage> StatusAsync(HttpClient http, string id, byte[] data) => http.SendAsync(Rufh.Head(Url(id), null));

        public override Task<HttpResponseMessage> DeleteAsync(HttpClient http, string id) => http.SendAsync(Rufh.Delete(Url(id), null));

        private static string Url(string id) => "/rufh/" + Uri.EscapeDataString(id);
    }

    private sealed class FineUploaderDriver : WireDriver
    {
        public override async Task<(HttpResponseMessage, string)> StartAsync(HttpClient http, string id, byte[] data) =>
            (await http.PostAsync("/fineuploader", Part(id, data, 0)), id);

        public override async Task<HttpResponseMessage> WriteRestAsync(HttpClient http, string id, byte[] data)
        {
            var part = await http.PostAsync("/fineuploader", Part(id, data, 1));
            if (!part.IsSuccessStatusCode)
                return part;
            part.Dispose();
            var done = new ByteArrayContent(Encoding.UTF8.GetBytes(UploadClient.Query(Fields(id, data))));
            done.Headers.ContentType = new MediaTypeHeaderValue("application/x-www-form-urlencoded");
            return await http.PostAsync("/fineuploader/done", done);
        }

        public override Task<HttpResponseMessage> DeleteAsync(HttpClient http, string id) => http.DeleteAsync("/fineuploader/" + Uri.EscapeDataString(id));

        private static Dictionary<string, string> Fields(string id, byte[] data) => new()
        {
            ["qquuid"] = id,
            ["qqfilename"] = "file.bin",
            ["qqtotalfilesize"] = Text(data.Length),
            ["qqtotalparts"] = "2",
        };

        private static MultipartFormDataContent Part(string id, byte[] data, int index)
        {
            var form = new MultipartFormDataContent();
            var fields = Fields(id, data);
            fields["qqpartindex"] = Text(index);
            fields["qqpartbyteoffset"] = Text(index * Half(data));
            fields["qqchunksize"] = Text(Half(data));
            foreach (var (name, value) in fields)
                form.Add(new StringContent(value), name);
            var file = new ByteArrayContent(data, index * Half(data), Half(data));
            file.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            form.Add(file, "qqfile", "blob");
            return form;
        }
    }

    private sealed class GoogleDriver : WireDriver
    {
        public override async Task<(HttpResponseMessage, string)> StartAsync(HttpClient http, string id, byte[] data)
        {
            var initiate = new HttpRequestMessage(HttpMethod.Post, Url(id) + "?uploadType=resumable");
            initiate.Headers.TryAddWithoutValidation("X-Upload-Content-Length", Text(data.Length));
            var started = await http.SendAsync(initiate);
            if (!started.IsSuccessStatusCode)
                return (started, id);
            started.Dispose();
            return (await Put(http, id, data, 0), id);
        }

        public override Task<HttpResponseMessage> WriteRestAsync(HttpClient http, string id, byte[] data) => Put(http, id, data, Half(data));

        public override Task<HttpResponseMessage> StatusAsync(HttpClient http, string id, byte[] data)
        {
            var query = new HttpRequestMessage(HttpMethod.Put, Url(id)) { Content = new ByteArrayContent([]) };
            query.Content.Headers.TryAddWithoutValidation("Content-Range", "bytes */" + Text(data.Length));
            return http.SendAsync(query);
        }

        public override bool Accepted(HttpResponseMessage response) => response.IsSuccessStatusCode || (int)response.StatusCode == 308;

        private static Task<HttpResponseMessage> Put(HttpClient http, string id, byte[] data, int offset)
        {
            var put = new HttpRequestMessage(HttpMethod.Put, Url(id)) { Content = new ByteArrayContent(data, offset, Half(data)) };
            put.Content.Headers.TryAddWithoutValidation("Content-Range", $"bytes {offset}-{offset + Half(data) - 1}/{data.Length}");
            return http.SendAsync(put);
        }

        private static string Url(string id) => "/upload/" + Uri.EscapeDataString(id);
    }

    private sealed class NginxDriver : WireDriver
    {
        public override async Task<(HttpResponseMessage, string)> StartAsync(HttpClient http, string id, byte[] data) =>
            (await http.SendAsync(NginxUploadProtocolTests.Segment(id, data, 0, Half(data) - 1, data.Length)), id);

        public override Task<HttpResponseMessage> WriteRestAsync(HttpClient http, string id, byte[] data) =>
            http.SendAsync(NginxUploadProtocolTests.Segment(id, data, Half(data), data.Length - 1, data.Length));
    }

    private sealed class AppendDriver : WireDriver
    {
        public override async Task<(HttpResponseMessage, string)> StartAsync(HttpClient http, string id, byte[] data)
        {
            var post = AppendProtocolTests.Post(id, "0", data[..Half(data)]);
            post.Headers.TryAddWithoutValidation("X-File-Size", Text(data.Length));
            return (await http.SendAsync(post), id);
        }

        public override Task<HttpResponseMessage> WriteRestAsync(HttpClient http, string id, byte[] data) =>
            http.SendAsync(AppendProtocolTests.Post(id, Text(Half(data)), data[Half(data)..]));

        public override Task<HttpResponseMessage> StatusAsync(HttpClient http, string id, byte[] data) => AppendProtocolTests.StatusAsync(http, id);
    }
}
