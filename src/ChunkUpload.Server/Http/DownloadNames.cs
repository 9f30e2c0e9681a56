namespace ChunkUpload.Server.Http;

/// <summary>Makes a client-supplied file name safe to hand back in a Content-Disposition header.</summary>
public static class DownloadNames
{
    public static string Safe(string fileName)
    {
        // Keep the last path segment only (a name such as "../../etc/passwd" becomes "passwd"), drop control
        // characters and the characters that are special in headers; ASP.NET Core encodes the rest (filename*).
        string name = fileName[(Math.Max(fileName.LastIndexOf('/'), fileName.LastIndexOf('\\')) + 1)..];
        name = new string(name.Where(c => !char.IsControl(c) && c != '"').ToArray()).Trim();
        return name is "" or "." or ".." ? "download" : name;
    }
}
