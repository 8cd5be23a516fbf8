# Turns docs/<Cmdlet>.md pages into MAML (en-US/<dll>-Help.xml) and docs/about_*.md into about_*.help.txt.
# platyPS is not served here, so the build does this itself. Types, positions, pipeline input and aliases
# come from the built cmdlets, so help cannot drift from the code; words come from the pages.
Set-StrictMode -Version Latest

function Read-HelpPage {
    param([Parameter(Mandatory)][string]$Path)
    $page = [ordered]@{ Name = $null; Synopsis = ''; Description = @(); Examples = @(); Parameters = @{}; Inputs = @(); Outputs = @(); Notes = @(); Links = @() }
    $section = $null; $current = $null; $inCode = $false; $buffer = [System.Collections.Generic.List[string]]::new()
    $flush = {
        $text = ($buffer -join "`n").Trim()
        $buffer.Clear()
        if (-not $text) { return }
        switch ($section) {
            'SYNOPSIS'    { $page.Synopsis = $text }
            'DESCRIPTION' { $page.Description += $text }
            'EXAMPLES'    { if ($current) { $current.Remarks += $text } }
            'PARAMETERS'  { if ($current) { $current.Text += $text } }
            'INPUTS'      { $page.Inputs += $text }
            'OUTPUTS'     { $page.Outputs += $text }
            'NOTES'       { $page.Notes += $text }
            'RELATED LINKS' { $page.Links += $text }
        }
    }
    foreach ($line in Get-Content -LiteralPath $Path) {
        if ($inCode) {
            if ($line -match '^```') { $inCode = $false; $current.Code = ($buffer -join "`n"); $buffer.Clear() } else { $buffer.Add($line) }
            continue
        }
        if ($line -match '^# (\S+)\s*$' -and -not $page.Name) { $page.Name = $Matches[1]; continue }
        if ($line -match '^## (.+?)\s*$') { & $flush; $section = $Matches[1].ToUpperInvariant(); $current = $null; continue }
        if ($line -match '^### (.+?)\s*$') {
            & $flush
            $title = $Matches[1]
            if ($section -eq 'EXAMPLES') { $current = @{ Title = $title; Code = ''; Remarks = @() }; $page.Examples += $current }
            elseif ($section -eq 'PARAMETERS') { $current = @{ Name = $title.TrimStart('-'); Text = @(); Default = $null }; $page.Parameters[$current.Name] = $current }
            continue
        }
        if ($line -match '^```' -and $section -eq 'EXAMPLES' -and $current) { & $flush; $inCode = $true; continue }
        if ($section -eq 'PARAMETERS' -and $current -and $line -match '^\s*Default(?: value)?:\s*(.+?)\s*$') { $current.Default = $Matches[1]; continue }
        $buffer.Add($line)
    }
    & $flush
    if (-not $page.Name) { throw "$Path has no '# Cmdlet-Name' title." }
    [pscustomobject]$page
}

function Add-Paras([System.Xml.XmlWriter]$w, [string[]]$texts) {
    $w.WriteStartElement('maml', 'description', $script:maml)
    foreach ($t in $texts) {
        foreach ($p in ($t -split "`n\s*`n")) {
            $w.WriteElementString('maml', 'para', $script:maml, ($p -replace '\s*\n\s*', ' ').Trim())
        }
    }
    $w.WriteEndElement()
}

function Get-PipelineInput($parameter) {
    $kinds = @()
    foreach ($a in $parameter.Attributes | Where-Object { $_ -is [System.Management.Automation.ParameterAttribute] }) {
        if ($a.ValueFromPipeline) { $kinds += 'ByValue' }
        if ($a.ValueFromPipelineByPropertyName) { $kinds += 'ByPropertyName' }
    }
    $kinds = $kinds | Select-Object -Unique
    if ($kinds) { "True ($($kinds -join ', '))" } else { 'False' }
}

$script:maml = 'http://schemas.microsoft.com/maml/2004/10'
$script:command = 'http://schemas.microsoft.com/maml/dev/command/2004/10'
$script:dev = 'http://schemas.microsoft.com/maml/dev/2004/10'

function Write-MamlHelp {
    <# Writes one MAML file for the given commands from their doc pages. Throws if a page or a parameter's text is missing. #>
    param(
        [Parameter(Mandatory)][System.Management.Automation.CommandInfo[]]$Command,
        [Parameter(Mandatory)][string]$DocsPath,
        [Parameter(Mandatory)][string]$OutFile
    )
    $common = [System.Management.Automation.Cmdlet]::CommonParameters + [System.Management.Automation.Cmdlet]::OptionalCommonParameters
    $settings = [System.Xml.XmlWriterSettings]@{ Indent = $true; Encoding = [System.Text.UTF8Encoding]::new($false) }
    $null = New-Item -ItemType Directory -Force -Path (Split-Path $OutFile)
    $w = [System.Xml.XmlWriter]::Create($OutFile, $settings)
    try {
        $w.WriteStartDocument()
        $w.WriteStartElement('helpItems', 'http://msh')
        $w.WriteAttributeString('schema', 'maml')
        foreach ($cmd in $Command | Sort-Object Name) {
            $pagePath = Join-Path $DocsPath "$($cmd.Name).md"
            if (-not (Test-Path $pagePath)) { throw "No help page $pagePath for $($cmd.Name)." }
            $page = Read-HelpPage $pagePath
            $parameters = $cmd.Parameters.Values | Where-Object { $_.Name -notin $common }
            $missing = $parameters | Where-Object { -not $page.Parameters.ContainsKey($_.Name) -or -not $page.Parameters[$_.Name].Text }
            if ($missing) { throw "$pagePath does not describe: $(($missing.Name | ForEach-Object { "-$_" }) -join ', ')" }
            if (-not $page.Synopsis) { throw "$pagePath has no SYNOPSIS." }
            if (-not $page.Examples) { throw "$pagePath has no EXAMPLES." }

            $w.WriteStartElement('command', 'command', $script:command)
            $w.WriteAttributeString('xmlns', 'maml', $null, $script:maml)
            $w.WriteAttributeString('xmlns', 'dev', $null, $script:dev)
            $w.WriteStartElement('command', 'details', $script:command)
            $w.WriteElementString('command', 'name', $script:command, $cmd.Name)
            $w.WriteElementString('command', 'verb', $script:command, $cmd.Verb)
            $w.WriteElementString('command', 'noun', $script:command, $cmd.Noun)
            Add-Paras $w @($page.Synopsis)
            $w.WriteEndElement()
            Add-Paras $w $page.Description

            $w.WriteStartElement('command', 'syntax', $script:command)
            foreach ($set in $cmd.ParameterSets) {
                $w.WriteStartElement('command', 'syntaxItem', $script:command)
                $w.WriteElementString('maml', 'name', $script:maml, $cmd.Name)
                foreach ($p in $set.Parameters | Where-Object { $_.Name -notin $common }) {
                    $w.WriteStartElement('command', 'parameter', $script:command)
                    $w.WriteAttributeString('required', "$($p.IsMandatory)".ToLowerInvariant())
                    $w.WriteAttributeString('position', $(if ($p.Position -ge 0) { "$($p.Position)" } else { 'named' }))
                    $w.WriteElementString('maml', 'name', $script:maml, $p.Name)
                    if ($p.ParameterType -ne [System.Management.Automation.SwitchParameter]) {
                        $w.WriteElementString('command', 'parameterValue', $script:command, $p.ParameterType.Name)
                    }
                    $w.WriteEndElement()
                }
                $w.WriteEndElement()
            }
            $w.WriteEndElement()

            $w.WriteStartElement('command', 'parameters', $script:command)
            foreach ($p in $parameters | Sort-Object Name) {
                $doc = $page.Parameters[$p.Name]
                $sets = $p.ParameterSets.Values
                $w.WriteStartElement('command', 'parameter', $script:command)
                $w.WriteAttributeString('required', "$(@($sets | Where-Object IsMandatory).Count -gt 0)".ToLowerInvariant())
                $w.WriteAttributeString('globbing', 'false')
                $w.WriteAttributeString('pipelineInput', (Get-PipelineInput $p))
                $pos = @($sets | Where-Object { $_.Position -ge 0 } | Select-Object -First 1)
                $w.WriteAttributeString('position', $(if ($pos) { "$($pos[0].Position)" } else { 'named' }))
                $w.WriteAttributeString('aliases', $(if ($p.Aliases.Count) { $p.Aliases -join ', ' } else { 'none' }))
                $w.WriteElementString('maml', 'name', $script:maml, $p.Name)
                Add-Paras $w $doc.Text
                $w.WriteElementString('command', 'parameterValue', $script:command, $p.ParameterType.Name)
                $w.WriteStartElement('dev', 'type', $script:dev)
                $w.WriteElementString('maml', 'name', $script:maml, $p.ParameterType.FullName)
                $w.WriteEndElement()
                $w.WriteElementString('dev', 'defaultValue', $script:dev, $(if ($doc.Default) { $doc.Default } else { 'None' }))
                $w.WriteEndElement()
            }
            $w.WriteEndElement()

            $w.WriteStartElement('command', 'inputTypes', $script:command)
            foreach ($i in $page.Inputs) {
                $w.WriteStartElement('command', 'inputType', $script:command)
                $w.WriteStartElement('dev', 'type', $script:dev); $w.WriteElementString('maml', 'name', $script:maml, ($i -split "`n")[0]); $w.WriteEndElement()
                Add-Paras $w @((($i -split "`n") | Select-Object -Skip 1) -join "`n")
                $w.WriteEndElement()
            }
            $w.WriteEndElement()
            $w.WriteStartElement('command', 'returnValues', $script:command)
            foreach ($type in $cmd.OutputType) {
                $w.WriteStartElement('command', 'returnValue', $script:command)
                $w.WriteStartElement('dev', 'type', $script:dev); $w.WriteElementString('maml', 'name', $script:maml, $type.Name); $w.WriteEndElement()
                Add-Paras $w $page.Outputs
                $w.WriteEndElement()
            }
            $w.WriteEndElement()
            if ($page.Notes) {
                $w.WriteStartElement('maml', 'alertSet', $script:maml)
                $w.WriteStartElement('maml', 'alert', $script:maml)
                foreach ($n in $page.Notes) { foreach ($p in ($n -split "`n\s*`n")) { $w.WriteElementString('maml', 'para', $script:maml, ($p -replace '\s*\n\s*', ' ').Trim()) } }
                $w.WriteEndElement(); $w.WriteEndElement()
            }

            $w.WriteStartElement('command', 'examples', $script:command)
            foreach ($ex in $page.Examples) {
                $w.WriteStartElement('command', 'example', $script:command)
                $w.WriteElementString('maml', 'title', $script:maml, "-------------------------- $($ex.Title) --------------------------")
                $w.WriteElementString('dev', 'code', $script:dev, $ex.Code)
                $w.WriteStartElement('dev', 'remarks', $script:dev)
                foreach ($r in $ex.Remarks) { foreach ($p in ($r -split "`n\s*`n")) { $w.WriteElementString('maml', 'para', $script:maml, ($p -replace '\s*\n\s*', ' ').Trim()) } }
                $w.WriteEndElement()
                $w.WriteEndElement()
            }
            $w.WriteEndElement()

            $w.WriteStartElement('command', 'relatedLinks', $script:command)
            foreach ($l in @('about_ResilientMail') + @($page.Links | ForEach-Object { $_ -split "`n" } | ForEach-Object { $_.Trim(' ', '-', '*') } | Where-Object { $_ })) {
                $w.WriteStartElement('maml', 'navigationLink', $script:maml)
                $w.WriteElementString('maml', 'linkText', $script:maml, $l)
                $w.WriteElementString('maml', 'uri', $script:maml, '')
                $w.WriteEndElement()
            }
            $w.WriteEndElement()
            $w.WriteEndElement() # command
        }
        $w.WriteEndElement()
        $w.WriteEndDocument()
    }
    finally { $w.Dispose() }
}

function Write-AboutHelp {
    <# about_*.md -> about_*.help.txt: markdown marks removed, text kept as written. #>
    param([Parameter(Mandatory)][string]$Source, [Parameter(Mandatory)][string]$OutDir)
    $name = [IO.Path]::GetFileNameWithoutExtension($Source)
    $lines = foreach ($line in Get-Content -LiteralPath $Source) {
        if ($line -match '^```') { continue }
        if ($line -match '^#{1,2} (.+)$') { $Matches[1].ToUpperInvariant(); continue }
        if ($line -match '^#{3,} (.+)$') { '  ' + $Matches[1]; continue }
        '    ' + ($line -replace '\*\*|`', '')
    }
    $null = New-Item -ItemType Directory -Force -Path $OutDir
    Set-Content -LiteralPath (Join-Path $OutDir "$name.help.txt") -Value $lines -Encoding utf8NoBOM
}

Export-ModuleMember -Function Read-HelpPage, Write-MamlHelp, Write-AboutHelp
